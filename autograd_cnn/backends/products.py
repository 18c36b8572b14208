"""Matrix products: matmul (MatMul's and Linear's forward), split over the worker threads on the CPU."""
from __future__ import annotations

from typing import Any

from .base import Backend


class ProductKernels(Backend):
    """The matrix product the ops call by name, written once against ``self.xp``."""

    #: A product of two matrices of at least this many multiply-adds (an MLP layer's
    #: 128 x 784 x 512) runs on BLAS's own threads.
    min_parallel_macs: int = 1 << 22

    def matmul(self, a: Any, b: Any) -> Any:
        """a @ b, with NumPy's rules. A product of two matrices of at least ``min_parallel_macs``
        multiply-adds (an MLP layer's 128 x 784 x 512) runs on BLAS's own threads
        (``blas_product``): BLAS shares one packed copy of the matrices among its threads, which
        parts of the rows cannot. A smaller one runs in parts of a's rows (of b's columns when b
        has more), a stack of matrices in parts of the stack, on the worker threads, with BLAS
        on one thread for each.
        (``dot``, not ``matmul``, in the parts: NumPy's matmul keeps the GIL through a product
        with a small output, and the threads' products would take turns.)"""
        xp = self.xp
        if a.ndim == 2 and b.ndim == 2:
            (m, k), n = a.shape, b.shape[1]
            if not self.launch_bound and m * k * n >= self.min_parallel_macs:
                return self.blas_product(a, b)
            out = xp.empty((m, n), dtype=xp.result_type(a, b))
            by_rows = m >= n
            parts = self.batch_parts(m, (k + n) * out.itemsize) if by_rows else \
                self.batch_parts(n, (k + m) * out.itemsize)

            def rows_part(rows: slice) -> None:
                xp.dot(a[rows], b, out=out[rows])

            def columns_part(cols: slice) -> None:
                out[:, cols] = xp.dot(a, b[:, cols])  # dot writes only into contiguous memory

            if len(parts) == 1:  # the whole product, written straight into out
                self.run_parts(rows_part, [slice(0, m)])
            else:
                self.run_parts(rows_part if by_rows else columns_part, parts)
            return out
        if a.ndim == b.ndim > 2 and a.shape[0] == b.shape[0]:
            parts = self.batch_parts(a.shape[0], (a[0].size + b[0].size) * a.itemsize)
            return xp.concatenate(self.run_parts(lambda stack: a[stack] @ b[stack], parts))
        return self.run_parts(lambda whole: a @ b, [None])[0]

    def blas_product(self, a: Any, b: Any) -> Any:
        """a @ b on BLAS's own threads (a backend with worker threads keeps them from spinning
        against its kernels afterwards)."""
        return a @ b
