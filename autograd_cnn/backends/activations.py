"""Activation kernels: ReLU and its backward (from its output), and erf (for GELU), against ``self.xp``."""
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

    def relu(self, x: Any) -> Any:
        """max(x, 0) (a NaN stays NaN), in x's memory layout (a conv's output stays channels-last)."""
        if x.nbytes < self.min_parallel_bytes:  # one part: no bookkeeping of parts for a small array
            return self.xp.maximum(x, 0)
        y = self.xp.empty_like(x)
        self.run_parts(lambda part: self.xp.maximum(x[part], 0, out=y[part]), self._leading_parts(x, 2 * x.itemsize))
        return y

    def relu_grad(self, gy: Any, y: Any) -> Any:
        """ReLU's backward from its output: gy * [y > 0], in y's memory layout (a conv's, channels-last).

        y > 0 exactly where x > 0 (where x is NaN, y is NaN and NaN > 0 is false), so the output,
        which the next op keeps anyway in most models, serves where a mask would be an extra array.
        A product, not a choice: a NaN in gy stays NaN where y is not positive."""
        if gy.nbytes < self.min_parallel_bytes and gy.flags.c_contiguous and y.flags.c_contiguous:
            return self.xp.multiply(gy, y > 0)  # the common small case, without the layout's bookkeeping
        gx = self.xp.empty_like(y, dtype=gy.dtype)
        # A gradient in another layout (Flatten's, C order, after a conv's channels-last ReLU) is
        # copied into y's layout first: one ufunc over two layouts crawls (1 ms for the
        # lecture CNN's last ReLU, against 0.1 ms for the copy and the product).
        same_layout = _layout(gy) == _layout(y)

        def grad_part(part: Any) -> None:
            if same_layout:
                self.xp.multiply(gy[part], y[part] > 0, out=gx[part])
            else:
                gx[part] = gy[part]
                self.xp.multiply(gx[part], y[part] > 0, out=gx[part])

        if gx.nbytes < self.min_parallel_bytes:
            grad_part(...)
        else:
            self.run_parts(grad_part, self._leading_parts(gx, 2 * gy.itemsize + y.itemsize))
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
