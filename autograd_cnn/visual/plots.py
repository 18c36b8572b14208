"""Pictures with matplotlib. Training curves: the loss and accuracy per epoch and, where
``nn.callbacks.GradientStats`` recorded them, each layer's gradient norm, update/weight ratio,
weight norm and dead ReLUs (the lectures' vanishing-gradient and batch-norm slides). Judging a
classifier (the lectures' homework): its confusion matrix, its most confident mistakes, and
what an augmentation does to the images.

matplotlib is imported only when one of them is called (``pip install 'autograd-cnn[plot]'``).
"""
from __future__ import annotations

import copy
import math
import os
from typing import Any

import numpy as np

from .. import checks
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, shape_str

# Each panel of gradient health: the History.steps prefix, its title, and whether a log scale fits.
HEALTH = (("grad_norm/", "gradient norm ‖∂L/∂w‖ per layer", True),
          ("update_ratio/", "update / weight ‖Δw‖ / ‖w‖ per layer", True),
          ("weight_norm/", "weight norm ‖w‖ per layer", False),
          ("dead_relu/", "dead ReLU units (fraction)", False))


def plot_training(history: Any, path: str | os.PathLike | None = None, title: str = "") -> Any:
    """Draw ``history`` (what ``fit`` returned, or its ``.history`` dict) and return the Figure;
    with ``path`` also save it there (png, svg or pdf, from the suffix)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("visual.plot_training needs matplotlib: pip install matplotlib "
                          "(or pip install 'autograd-cnn[plot]')") from None
    epochs = getattr(history, "history", history)
    steps = getattr(history, "steps", {}) or {}
    if not isinstance(epochs, dict):
        raise ArgumentTypeError(f"plot_training: expected the History that fit returns (or its .history dict), "
                                f"got {type(history).__name__}")
    panels = [("loss", [k for k in ("loss", "val_loss") if k in epochs], False)]
    if "accuracy" in epochs or "val_accuracy" in epochs:
        panels.append(("accuracy", [k for k in ("accuracy", "val_accuracy") if k in epochs], False))
    panels += [(name, sorted(k for k in steps if k.startswith(prefix)), log) for prefix, name, log in HEALTH
               if any(k.startswith(prefix) for k in steps)]
    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 3.3 * rows), squeeze=False)
    for ax, (name, keys, log) in zip(axes.flat, panels):
        per_step = bool(keys) and keys[0] in steps
        for key in keys:
            values = steps[key] if per_step else epochs[key]
            x = steps.get("step", range(len(values))) if per_step else range(1, len(values) + 1)
            ax.plot(list(x)[:len(values)], values, label=key.split("/", 1)[-1], marker="" if per_step else "o")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("training step" if per_step else "epoch", fontsize=9)
        if log and any(v > 0 for key in keys for v in steps[key] if v == v):
            ax.set_yscale("log")
        if name.startswith("update"):
            ax.axhline(1e-3, color="#9ca3af", linestyle="--", linewidth=1)  # the usual healthy size
        if keys:
            ax.legend(fontsize=7, ncol=2 if len(keys) > 6 else 1)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        folder = os.path.dirname(os.fspath(path))
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(path, dpi=90)
    return fig



# --------------------------------------------------------------------------- judging a classifier


def _pyplot(what: str) -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(f"visual.{what} needs matplotlib: pip install matplotlib "
                          "(or pip install 'autograd-cnn[plot]')") from None
    return plt


def _finish(plt: Any, fig: Any, path: str | os.PathLike | None) -> Any:
    """Save to ``path`` (png, svg or pdf from the suffix) and let go of pyplot's reference; the
    Figure returned shows itself inline in Jupyter either way."""
    fig.tight_layout()
    if path is not None:
        folder = os.path.dirname(os.fspath(path))
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
    return fig


def _names(class_names: Any, k: int, where: str) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(k)]
    names = [str(n) for n in class_names]
    if len(names) != k:
        raise ArgumentError(f"visual.{where}: class_names has {len(names)} names for {k} classes")
    return names


def plot_confusion_matrix(y_true: Any, y_pred: Any, class_names: Any = None, path: str | os.PathLike | None = None,
                          normalize: bool | str = "both", title: str = "") -> Any:
    """The confusion matrix as a picture (rows: true class, columns: predicted), each cell
    written in; ``normalize``: False the counts, True each row as fractions of the class (the
    diagonal is each class's recall), "both" the two side by side. ``y_true``/``y_pred`` as
    ``metrics.confusion_matrix`` takes them; ``class_names`` label the classes 0, 1, ...
    Returns the Figure; with ``path`` also saves it there."""
    from .. import metrics

    normalize = checks.choice("plot_confusion_matrix", "normalize", normalize, (False, True, "both"))
    k = len(class_names) if class_names is not None else None
    if k is not None:
        largest = max(int(metrics.labels_of("plot_confusion_matrix", name, v)[0].max(initial=0))
                      for name, v in (("y_true", y_true), ("y_pred", y_pred)))
        if largest >= k:
            raise ArgumentError(f"visual.plot_confusion_matrix: class_names has {k} names, but the labels go up "
                                f"to {largest}; give a name to every class 0..{largest}")
    cm = metrics.confusion_matrix(y_true, y_pred, num_classes=k)
    names = _names(class_names, len(cm), "plot_confusion_matrix")
    plt = _pyplot("plot_confusion_matrix")
    panels = [False, True] if normalize == "both" else [normalize]
    size = max(4.0, 0.55 * len(cm) + 2.2)
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size), squeeze=False)
    rows = np.maximum(cm.sum(axis=1, keepdims=True), 1)
    for ax, fractions in zip(axes.flat, panels):
        values = cm / rows if fractions else cm
        ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if fractions else max(int(cm.max()), 1))
        for (i, j), v in np.ndenumerate(values):
            text = f"{v:.2f}" if fractions else str(int(v))
            dark = v > (0.5 if fractions else cm.max() / 2)
            ax.text(j, i, text, ha="center", va="center", fontsize=7 if len(cm) > 8 else 9,
                    color="white" if dark else "#1f2937")
        ax.set_xticks(range(len(cm)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(cm)), names, fontsize=8)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title("fraction of each true class" if fractions else "counts", fontsize=10)
    p, r, f1 = metrics.from_confusion(cm, "macro")
    accuracy = np.trace(cm) / max(cm.sum(), 1)
    fig.suptitle(title or f"accuracy {accuracy:.3f}, macro F1 {f1:.3f} ({int(cm.sum())} samples)", fontsize=11)
    return _finish(plt, fig, path)


def _displayable(images: Any, where: str) -> np.ndarray:
    """(N, H, W) grey or (N, H, W, 3) colour images from (N, H, W), (N, C, H, W) or (N, H, W, C)."""
    x = np.asarray(images.numpy() if hasattr(images, "numpy") else images, dtype=np.float64)
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 3):
        raise ShapeError(f"visual.{where}: images must be (N, H, W), (N, C, H, W) or (N, H, W, C) with 1 or 3 "
                         f"channels, got shape {shape_str(np.shape(images))}")
    return x


def _show(ax: Any, image: np.ndarray, low: float, high: float) -> None:
    if image.ndim == 3:
        ax.imshow(np.clip((image - low) / max(high - low, 1e-12), 0, 1))
    else:
        ax.imshow(image, cmap="gray_r", vmin=low, vmax=high)  # ink dark on white paper, as the slides print them
    ax.set_xticks([])
    ax.set_yticks([])


def plot_mistakes(images: Any, y_true: Any, y_pred: Any, n: int = 25, path: str | os.PathLike | None = None,
                  class_names: Any = None) -> Any:
    """Up to ``n`` wrongly classified images with their true and predicted classes. Given
    probabilities (or logits) as ``y_pred`` (N, C), the most confident mistakes come first, each
    with the probability it gave its wrong class. Returns the Figure; with ``path`` also saves it."""
    from .. import metrics

    n = checks.integer("plot_mistakes", "n", n, minimum=1)
    x = _displayable(images, "plot_mistakes")
    t, _ = metrics.labels_of("plot_mistakes", "y_true", y_true)
    p, k = metrics.labels_of("plot_mistakes", "y_pred", y_pred)
    if not len(x) == len(t) == len(p):
        raise ShapeError(f"visual.plot_mistakes: images, y_true and y_pred hold {len(x)}, {len(t)} and {len(p)} "
                         "samples; they must hold the same")
    wrong = np.flatnonzero(t != p)
    confidence = None
    if k is not None:
        scores = np.asarray(y_pred.numpy() if hasattr(y_pred, "numpy") else y_pred, dtype=np.float64)
        if scores.min() < 0 or not np.allclose(scores.sum(axis=1), 1, atol=1e-3):  # logits: softmax
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
        confidence = scores.max(axis=1)
        wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
    wrong = wrong[:n]
    names = _names(class_names, int(max(t.max(), p.max(), (k or 0) - 1)) + 1 if class_names is None
                   else len(class_names), "plot_mistakes")
    plt = _pyplot("plot_mistakes")
    columns = min(len(wrong), 5) or 1
    rows = max(1, math.ceil(len(wrong) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.7 * rows), squeeze=False)
    low, high = float(x.min()), float(x.max())
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, wrong):
        ax.set_axis_on()
        _show(ax, x[i], low, high)
        sure = f" ({confidence[i]:.2f})" if confidence is not None else ""
        ax.set_title(f"true: {names[t[i]]}\npredicted: {names[p[i]]}{sure}", fontsize=8, color="#b91c1c")
    if not len(wrong):
        axes.flat[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle(f"{len(np.flatnonzero(t != p))} mistakes in {len(t)} samples"
                 + (", most confident first" if confidence is not None else ""), fontsize=10)
    return _finish(plt, fig, path)


def show_augmentations(layer_or_transform: Any, images: Any, n: int = 8, path: str | os.PathLike | None = None,
                       rows: int = 4, seed: int | None = 0) -> Any:
    """Each of the first ``rows`` images (left, framed) beside ``n`` draws of the augmentation:
    a ``data.transforms`` transform (it takes (N, C, H, W)) or a Keras augmentation layer or
    model of them (channels-last, called with ``training=True``). Returns the Figure; with
    ``path`` also saves it."""
    n = checks.integer("show_augmentations", "n", n, minimum=1)
    rows = checks.integer("show_augmentations", "rows", rows, minimum=1)
    x = _displayable(images, "show_augmentations")[:rows]
    draws = [_augmented(layer_or_transform, x, seed + i if seed is not None else None) for i in range(n)]
    plt = _pyplot("show_augmentations")
    fig, axes = plt.subplots(len(x), n + 1, figsize=(1.35 * (n + 1), 1.45 * len(x)), squeeze=False)
    low, high = float(x.min()), float(x.max())
    for r in range(len(x)):
        _show(axes[r, 0], x[r], low, high)
        for spine in axes[r, 0].spines.values():
            spine.set_edgecolor("#2563eb")
            spine.set_linewidth(2)
        for c, draw in enumerate(draws, start=1):
            _show(axes[r, c], draw[r], low, high)
    axes[0, 0].set_title("original", fontsize=8)
    fig.suptitle(_describe(layer_or_transform), fontsize=9)
    return _finish(plt, fig, path)


def _augmented(augment: Any, x: np.ndarray, seed: int | None) -> np.ndarray:
    """One draw of ``augment`` on display images x, back in display form."""
    from ..creation import tensor

    grey = x.ndim == 3
    last = x[..., None] if grey else x  # (N, H, W, C)
    keras_like = type(augment).__module__.startswith("autograd_cnn.keras")
    first_axis = getattr(augment, "data_format", "channels_last") == "channels_first" or not keras_like
    batch = tensor(np.ascontiguousarray(last.transpose(0, 3, 1, 2) if first_axis else last), dtype="float32")
    rng = np.random.default_rng(seed)
    if keras_like:
        # a copy whose layers draw from ``rng``: the picture repeats, and the layers' own generators
        # (or the seeded host generator that shuffles the data) are left where they were
        augment = copy.deepcopy(augment)
        for layer in augment.modules():
            if hasattr(layer, "_rng"):
                layer._rng = rng
        out = augment(batch, training=True)
    elif hasattr(augment, "apply") or hasattr(augment, "transforms"):
        out = augment(batch, rng=rng)
    else:
        out = augment(batch)
    out = np.asarray(out.numpy() if hasattr(out, "numpy") else out)
    out = out.transpose(0, 2, 3, 1) if first_axis else out
    return out[..., 0] if grey else out


def _describe(augment: Any) -> str:
    parts = getattr(augment, "transforms", None) or getattr(augment, "layers", None) or [augment]
    return " → ".join(type(p).__name__ for p in parts)
