"""Indexing kernels: scatter-add (getitem's backward) and one-hot rows from class indices."""
from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from .base import Backend


def class_range_message(op: str, classes: int, low: int, high: int) -> str:
    """The error text for class indices from ``low`` to ``high`` that leave [0, classes)."""
    return f"{op}: class indices must lie in [0, {classes - 1}], got values from {low} to {high}"


class IndexingKernels(Backend):
    """Kernels driven by integer indices, written once against ``self.xp``."""

    def scatter_add(self, out: Any, index: Any, values: Any) -> None:
        """out[index] += values, adding repeated indices up (getitem's backward)."""
        self.xp.add.at(out, index, values)

    def one_hot(self, op: str, target: Any, classes: int, on: float, off: float, dtype: Any) -> Any:
        """Rows of ``classes`` columns: ``on`` at each target's class, ``off`` elsewhere.

        A class index outside [0, classes) is a ShapeError naming ``op``.
        """
        if target.size and (int(target.min()) < 0 or int(target.max()) >= classes):
            raise ShapeError(class_range_message(op, classes, int(target.min()), int(target.max())))
        q = self.xp.full(target.shape + (classes,), off, dtype=dtype)
        self.xp.put_along_axis(q, target[..., None].astype(self.xp.int64), on, axis=-1)
        return q
