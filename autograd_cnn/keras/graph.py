"""The symbolic side of Keras's functional API: ``KerasTensor``, the ``Node`` a call records, names.

``keras.Input(shape)`` returns a ``KerasTensor``: a shape (``None`` for the batch) and a dtype,
no data. A layer called on KerasTensors builds its weights from their shapes, works out its
output shapes, and records a ``Node`` (the layer, the inputs it was given, the outputs it
made); the KerasTensors it returns point back at that node. ``keras.Model(inputs, outputs)``
walks those records back from the outputs to find the layers and the order to run them in.
Nothing here touches data: the real forward pass is ``Model.forward``.
"""
from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

_uids: dict[str, itertools.count] = defaultdict(lambda: itertools.count())


def snake_case(name: str) -> str:
    """Keras's automatic layer names: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d, ReLU -> re_lu."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix: str) -> str:
    """``prefix`` the first time, then ``prefix_1``, ``prefix_2``, ... (one count per prefix, as Keras)."""
    n = next(_uids[prefix])
    return prefix if n == 0 else f"{prefix}_{n}"


def reset_names() -> None:
    """Forget every count: the next Dense is ``dense`` again (``keras.backend.clear_session``)."""
    _uids.clear()


def shape_text(shape: Any) -> str:
    """(None, 26, 26, 32); a list of them for several outputs."""
    if isinstance(shape, list):
        return "[" + ", ".join(shape_text(s) for s in shape) + "]"
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


class KerasTensor:
    """A symbolic tensor: what ``keras.Input`` and a layer called on KerasTensors return.

    ``shape`` has ``None`` for the batch (and any size not fixed), ``dtype`` is a NumPy dtype
    name. ``_keras_history`` is ``(layer, node, index)``: the call that made it.
    """

    __slots__ = ("shape", "dtype", "name", "_keras_history")

    def __init__(self, shape: tuple, dtype: str = "float32", name: str | None = None) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.name = name
        self._keras_history: tuple[Any, Node, int] | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={shape_text(self.shape)}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self!r} is symbolic: it has a shape but no values. Call a model built on it, "
                        "model(x) or model.predict(x), to compute with data")


class Node:
    """One call of a layer on KerasTensors: ``outputs = layer(inputs, **kwargs)``.

    ``template`` is the call's ``inputs`` argument with each KerasTensor replaced by its index
    in ``inputs`` (a list for Add's list, one index for a single tensor), so that the model can
    rebuild the same argument from real tensors.
    """

    def __init__(self, layer: Any, template: Any, inputs: list[KerasTensor], kwargs: dict,
                 outputs: list[KerasTensor]) -> None:
        self.layer, self.template, self.inputs, self.kwargs, self.outputs = layer, template, inputs, kwargs, outputs

    def arguments(self, lookup: Callable[[KerasTensor], Any]) -> Any:
        """The call's ``inputs`` argument with every KerasTensor replaced by ``lookup(tensor)``."""
        return _fill(self.template, [lookup(t) for t in self.inputs])


def flatten(structure: Any) -> list:
    """The leaves of nested lists, tuples and dicts, in order."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for key in structure for leaf in flatten(structure[key])]
    return [structure]


def template_of(structure: Any, leaves: list) -> Any:
    """``structure`` with each KerasTensor replaced by its index in ``leaves`` (appended as met)."""
    if isinstance(structure, KerasTensor):
        leaves.append(structure)
        return len(leaves) - 1
    if isinstance(structure, (list, tuple)):
        return type(structure)(template_of(s, leaves) for s in structure)
    if isinstance(structure, dict):
        return {k: template_of(v, leaves) for k, v in structure.items()}
    return _Constant(structure)


class _Constant:
    """A non-tensor value inside a call's inputs, kept as it was given."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _fill(template: Any, values: list) -> Any:
    if isinstance(template, int):
        return values[template]
    if isinstance(template, _Constant):
        return template.value
    if isinstance(template, (list, tuple)):
        return type(template)(_fill(t, values) for t in template)
    return {k: _fill(v, values) for k, v in template.items()}


def has_keras_tensor(structure: Any) -> bool:
    return any(isinstance(leaf, KerasTensor) for leaf in flatten(structure))


def shapes_of(structure: Any) -> Any:
    """The same structure with each KerasTensor (or tensor) replaced by its shape."""
    if isinstance(structure, (list, tuple)):
        return [shapes_of(s) for s in structure]
    if isinstance(structure, dict):
        return {k: shapes_of(v) for k, v in structure.items()}
    return tuple(structure.shape)
