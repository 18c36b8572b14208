"""Optimizer update rules, in place: SGD with momentum, RMSprop and Adam, against ``self.xp``.

The CuPy backend fuses each into one kernel.
"""
from __future__ import annotations

from typing import Any

from .base import Backend


class UpdateKernels(Backend):
    """The update rules optim calls (equal to PyTorch's); a backend may fuse each into one pass."""

    def sgd_momentum_update(self, p: Any, g: Any, buf: Any, lr: float, momentum: float, dampening: float,
                            nesterov: bool) -> None:
        """buf = momentum buf + (1 - dampening) g; p -= lr (g + momentum buf if nesterov else buf)."""
        buf *= momentum
        buf += (1 - dampening) * g
        p -= lr * (g + momentum * buf if nesterov else buf)

    def rmsprop_update(self, p: Any, g: Any, square_avg: Any, buf: Any, lr: float, alpha: float,
                       eps: float, momentum: float) -> None:
        """square_avg = alpha square_avg + (1 - alpha) g^2; step = g / (sqrt(square_avg) + eps);
        with momentum, buf = momentum buf + step and the step is buf; p -= lr step."""
        square_avg *= alpha
        square_avg += (1 - alpha) * g * g
        step = self.xp.sqrt(square_avg)
        step += eps
        self.xp.divide(g, step, out=step)
        if buf is not None:
            buf *= momentum
            buf += step
            step = buf
        p -= lr * step

    def adam_update(self, p: Any, g: Any, exp_avg: Any, exp_avg_sq: Any, betas: tuple, step_size: float,
                    bias2_sqrt: float, eps: float) -> None:
        """Adam's moving averages of g and g^2, then p -= step_size m / (sqrt(v) / bias2_sqrt + eps)
        (step_size = lr / (1 - beta1^t), bias2_sqrt = sqrt(1 - beta2^t): the bias corrections)."""
        b1, b2 = betas
        exp_avg *= b1
        exp_avg += (1 - b1) * g
        exp_avg_sq *= b2
        exp_avg_sq += (1 - b2) * g * g
        denom = self.xp.sqrt(exp_avg_sq)
        denom /= bias2_sqrt
        denom += eps
        self.xp.divide(exp_avg, denom, out=denom)  # reuse the buffer for the update direction
        denom *= step_size
        p -= denom
