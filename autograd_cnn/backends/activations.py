"""Activation kernels: ReLU with the mask its backward keeps, and erf (for GELU), against ``self.xp``."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import Backend


class ActivationKernels(Backend):
    """The elementwise kernels the activation ops call by name."""

    def relu_with_mask(self, x: Any) -> tuple:
        """max(x, 0) and the mask x > 0 (what ReLU's backward keeps), in x's memory layout."""
        if x.nbytes < self.min_parallel_bytes:  # one part: no bookkeeping of parts for a small array
            return self.xp.maximum(x, 0), x > 0
        y, positive = self.xp.empty_like(x), self.xp.empty_like(x, dtype=bool)

        def relu_part(part: slice) -> None:
            self.xp.maximum(x[part], 0, out=y[part])
            self.xp.greater(x[part], 0, out=positive[part])

        self.run_parts(relu_part, self._leading_parts(x, 5))
        return y, positive

    def relu_grad(self, gy: Any, positive: Any) -> Any:
        """ReLU's backward: gy times the mask, in the mask's memory layout (a conv's, channels-last)."""
        gx = self.xp.empty_like(positive, dtype=gy.dtype)
        if gx.nbytes < self.min_parallel_bytes:
            return self.xp.multiply(gy, positive, out=gx)
        self.run_parts(lambda part: self.xp.multiply(gy[part], positive[part], out=gx[part]),
                       self._leading_parts(gx, 2 * gy.itemsize + 1))
        return gx

    def _leading_parts(self, x: Any, bytes_per_element: int) -> list:
        """Parts along x's first axis for an elementwise kernel that moves ``bytes_per_element``."""
        if x.ndim == 0:
            return [...]  # x[...] is the whole of a 0-d array
        return self.batch_parts(x.shape[0], x.size // max(x.shape[0], 1) * bytes_per_element)

    def erf(self, x: Any) -> Any:
        """The error function (NumPy has none; GELU needs it)."""
        host = np.asarray(self.to_host(x))
        # asarray: frompyfunc gives a Python float, not an array, for a 0-d input.
        out = np.asarray(np.frompyfunc(math.erf, 1, 1)(host), dtype=host.dtype)
        return self.from_host(out)
