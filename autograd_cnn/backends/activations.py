"""Activation kernels: ReLU with the mask its backward keeps, and erf (for GELU), against ``self.xp``."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import Backend


class ActivationKernels(Backend):
    """The elementwise kernels the activation ops call by name."""

    def relu_with_mask(self, x: Any) -> tuple:
        """max(x, 0) and the mask x > 0 (what ReLU's backward keeps)."""
        return self.xp.maximum(x, 0), x > 0

    def relu_grad(self, gy: Any, positive: Any) -> Any:
        """ReLU's backward: gy times the mask."""
        return gy * positive

    def erf(self, x: Any) -> Any:
        """The error function (NumPy has none; GELU needs it)."""
        host = np.asarray(self.to_host(x))
        # asarray: frompyfunc gives a Python float, not an array, for a 0-d input.
        out = np.asarray(np.frompyfunc(math.erf, 1, 1)(host), dtype=host.dtype)
        return self.from_host(out)
