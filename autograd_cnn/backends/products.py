"""Matrix products: matmul (MatMul's and Linear's forward), split over the worker threads on the CPU."""
from __future__ import annotations

from typing import Any

from .base import Backend


class ProductKernels(Backend):
    """The matrix product the ops call by name, written once against ``self.xp``."""

    #: A product of at least this many multiply-adds is shared by the threads even when its
    #: matrices are small (an MLP layer's 128 x 784 x 512): its time is arithmetic, not memory.
    min_parallel_macs: int = 1 << 22

    def _product_parts(self, count: int, item_bytes: int, macs: int) -> list:
        """Rows (or columns) in parts: by their bytes, as batch_parts, or one part per thread for
        a product small in memory but long in arithmetic."""
        parts = self.batch_parts(count, item_bytes)
        if len(parts) == 1 and not self.launch_bound and macs >= self.min_parallel_macs and count > 1:
            size = -(-count // min(self.threads, count))
            parts = [slice(start, min(start + size, count)) for start in range(0, count, size)]
        return parts

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
                self.run_parts(rows_part, self._product_parts(m, (k + n) * out.itemsize, m * k * n))
            else:
                self.run_parts(columns_part, self._product_parts(n, (k + m) * out.itemsize, m * k * n))
            return out
        if a.ndim == b.ndim > 2 and a.shape[0] == b.shape[0]:
            parts = self.batch_parts(a.shape[0], (a[0].size + b[0].size) * a.itemsize)
            return xp.concatenate(self.run_parts(lambda stack: a[stack] @ b[stack], parts))
        return self.run_parts(lambda whole: a @ b, [None])[0]
