"""Training curves with matplotlib: the loss and accuracy per epoch and, where
``nn.callbacks.GradientStats`` recorded them, each layer's gradient norm, update/weight ratio,
weight norm and dead ReLUs (the lectures' vanishing-gradient and batch-norm slides).

matplotlib is imported only when ``plot_training`` is called (``pip install 'autograd-cnn[plot]'``).
"""
from __future__ import annotations

import math
import os
from typing import Any

from ..errors import ArgumentTypeError

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

