"""Matrix products: matmul (MatMul's and Linear's forward), split over the worker threads on the CPU."""
from __future__ import annotations

from typing import Any

from .base import Backend


class ProductKernels(Backend):
    """The matrix product the ops call by name, written once against ``self.xp``."""

    def matmul(self, a: Any, b: Any) -> Any:
        """a @ b, with NumPy's rules. A product of two matrices runs in parts of a's rows (of b's
        columns when b has more), a stack of them in parts of the stack, on the worker threads;
        every product here runs through ``run_parts``, so BLAS never starts threads of its own.
        (``dot``, not ``matmul``, for two matrices: NumPy's matmul keeps the GIL through a product
        with a small output, and the threads' products would take turns.)"""
        xp = self.xp
        if a.ndim == 2 and b.ndim == 2:
            (m, k), n = a.shape, b.shape[1]
            out = xp.empty((m, n), dtype=xp.result_type(a, b))

            def rows_part(rows: slice) -> None:
                xp.dot(a[rows], b, out=out[rows])

            def columns_part(cols: slice) -> None:
                out[:, cols] = xp.dot(a, b[:, cols])  # dot writes only into contiguous memory

            if m >= n:
                self.run_parts(rows_part, self.batch_parts(m, (k + n) * out.itemsize))
            else:
                self.run_parts(columns_part, self.batch_parts(n, (k + m) * out.itemsize))
            return out
        if a.ndim == b.ndim > 2 and a.shape[0] == b.shape[0]:
            parts = self.batch_parts(a.shape[0], (a[0].size + b[0].size) * a.itemsize)
            return xp.concatenate(self.run_parts(lambda stack: a[stack] @ b[stack], parts))
        return self.run_parts(lambda whole: a @ b, [None])[0]
