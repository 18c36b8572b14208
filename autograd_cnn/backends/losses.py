"""Loss kernels: softmax, log-softmax, and softmax cross-entropy with its gradient, against ``self.xp``."""
from __future__ import annotations

from typing import Any

from .base import Backend


class LossKernels(Backend):
    """The softmax family; each subtracts the row maximum first, so no exponential overflows."""

    def softmax(self, x: Any, axis: int) -> Any:
        """e^x / sum e^x along an axis, with the maximum taken out first (no overflow)."""
        e = self.xp.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    def log_softmax(self, x: Any, axis: int) -> Any:
        """x - log sum e^x along an axis, stable in the same way."""
        shifted = x - x.max(axis=axis, keepdims=True)
        return shifted - self.xp.log(self.xp.exp(shifted).sum(axis=axis, keepdims=True))

    def softmax_cross_entropy(self, z: Any, q: Any) -> Any:
        """-sum_c q log softmax(z) over the last axis: one loss per row."""
        return -(q * self.log_softmax(z, -1)).sum(axis=-1)

    def softmax_cross_entropy_grad(self, z: Any, q: Any, g: Any, q_sums_to_one: bool) -> Any:
        """(softmax(z) * sum_c q - q) * g, per row; the sum is taken as 1 when q is known to sum to 1."""
        p = self.softmax(z, -1)
        if not q_sums_to_one:
            p *= q.sum(axis=-1, keepdims=True)
        return (p - q) * g[..., None]
