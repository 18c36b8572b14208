"""Activation kernels: ReLU with the mask its backward keeps, and erf (for GELU), against ``self.xp``."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import Backend


def _layout(a: Any) -> tuple:
    """The order of an array's axes in memory, from the largest stride down."""
    return tuple(sorted(range(a.ndim), key=lambda axis: -a.strides[axis]))


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
        if gy.nbytes < self.min_parallel_bytes and gy.flags.c_contiguous and positive.flags.c_contiguous:
            return self.xp.multiply(gy, positive)  # the common small case, without the layout's bookkeeping
        gx = self.xp.empty_like(positive, dtype=gy.dtype)
        # A gradient in another layout (Flatten's, C order, after a conv's channels-last ReLU) is
        # copied into the mask's layout first: one ufunc over two layouts crawls (1 ms for the
        # lecture CNN's last ReLU, against 0.1 ms for the copy and the product).
        same_layout = _layout(gy) == _layout(positive)

        def grad_part(part: Any) -> None:
            if same_layout:
                self.xp.multiply(gy[part], positive[part], out=gx[part])
            else:
                gx[part] = gy[part]
                self.xp.multiply(gx[part], positive[part], out=gx[part])

        if gx.nbytes < self.min_parallel_bytes:
            grad_part(...)
        else:
            self.run_parts(grad_part, self._leading_parts(gx, 2 * gy.itemsize + 1))
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
