"""Keras's utilities: `to_categorical`, `plot_model`."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import checks
from ..errors import ArgumentError, ArgumentTypeError


def to_categorical(x: Any, num_classes: int | None = None) -> np.ndarray:
    """One-hot rows for class indices, as Keras: ``x`` of shape ``s`` (or ``s + (1,)``) gives float64
    ``s + (num_classes,)``; ``num_classes`` defaults to ``max(x) + 1``.

    ``to_categorical([0, 2], 3)`` is ``[[1, 0, 0], [0, 0, 1]]``. Indices outside
    ``[0, num_classes)`` and fractions are errors (Keras would wrap -1 round to the last class).
    """
    values = x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else np.asarray(x)
    if values.dtype.kind not in "iuf" or values.dtype.kind == "f" and not np.all(values == np.round(values)):
        raise ArgumentTypeError(f"to_categorical: x must hold class indices (whole numbers), got "
                                f"{values.dtype} values" + (" with fractions" if values.dtype.kind == "f" else ""))
    labels = values.astype(np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:  # (N, 1) labels, as CIFAR-10's, give (N, classes)
        shape = shape[:-1]
    labels = labels.reshape(-1)
    if num_classes is None or num_classes == 0:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    else:
        num_classes = checks.integer("to_categorical", "num_classes", num_classes, minimum=1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ArgumentError(f"to_categorical: x holds class indices from {labels.min()} to {labels.max()}, "
                            f"outside [0, {num_classes - 1}] for num_classes={num_classes}")
    categorical = np.zeros((labels.size, num_classes))
    categorical[np.arange(labels.size), labels] = 1
    return categorical.reshape(shape + (num_classes,))


def plot_model(model: Any, to_file: str | os.PathLike = "model.png", show_shapes: bool = False,
               show_dtype: bool = False, show_layer_names: bool = False, rankdir: str = "TB",
               expand_nested: bool = False, dpi: int = 200, show_layer_activations: bool = False,
               show_trainable: bool = False, **kwargs: Any) -> Any:
    """Draw the model's layers (``visual.layer_graph``) and write the picture to ``to_file`` (png,
    svg, pdf or dot, from its suffix). Returns the picture, which a notebook shows.

    Keras's arguments; nested models are drawn as one box each (``expand_nested=True`` is not
    available). png, svg and pdf need Graphviz's ``dot`` program.
    """
    from ..visual.layers import layer_graph
    from ..visual.render import check_format, write_file

    unknown = sorted(set(kwargs) - {"splines"})  # Keras's edge style: the house style draws its own
    if unknown:
        raise ArgumentTypeError(f"plot_model: unknown argument {unknown[0]!r}")
    if checks.flag("plot_model", "expand_nested", expand_nested):
        raise ArgumentError("plot_model: expand_nested=True is not available; nested models are drawn as "
                            "one box each")
    path = os.fspath(to_file)
    format, path = check_format(path, None, "plot_model")
    if format == "html":
        raise ArgumentError(f"plot_model: write png, svg, pdf or dot, not {path!r}")
    picture = layer_graph(model, show_shapes=show_shapes, show_layer_names=show_layer_names,
                          show_dtype=show_dtype, show_layer_activations=show_layer_activations,
                          show_trainable=show_trainable, rankdir=rankdir,
                          dpi=dpi if format == "png" else None)
    write_file(path, picture.source.encode("utf-8") if format == "dot" else picture.pipe(format))
    return picture


__all__ = ["plot_model", "to_categorical"]
