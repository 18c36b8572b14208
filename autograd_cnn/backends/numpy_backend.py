"""The NumPy (CPU) backend."""
from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .base import Backend
from .threads import BlasThreads, Workers, thread_count
from .xp_backend import XpBackend

#: Set to 0 to leave the C library's malloc settings as they are (see ``keep_freed_memory``).
MEMORY_ENV_VAR = "AUTOGRAD_CNN_CACHE_MEMORY"


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse; True when it took the settings.

    NumPy takes every array from malloc. By default glibc maps a block of a few MiB afresh
    for each new array and hands it back to the kernel when the array is freed, so every
    activation and gradient of a training step pays a page fault per 4 KiB (the kernel
    zeroes each page): about a third of the lecture CNN's step. Raising the mmap and trim
    thresholds lets freed blocks serve the next arrays (as PyTorch's GPU allocator keeps its blocks); the
    process keeps its peak size instead of shrinking between steps. Only glibc has
    ``mallopt``; elsewhere (macOS, Windows, musl) nothing changes.
    """
    if os.environ.get(MEMORY_ENV_VAR, "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # Older glibc caps the mmap threshold at 32 MiB. The trim threshold is set only when the
    # mmap one took: alone it would send every large array to mmap, the slow path.
    took = mallopt(m_mmap_threshold, 1 << 30) or mallopt(m_mmap_threshold, 32 << 20)
    return bool(took and mallopt(m_trim_threshold, 1 << 30))


class NumpyBackend(XpBackend):
    """NumPy arrays on the CPU: the generic kernels, their parts run on worker threads."""

    name = "numpy"
    xp = np

    def __init__(self) -> None:
        super().__init__()
        self.caches_memory = keep_freed_memory()
        # Threads only where BLAS can be held to one thread while they run (OpenBLAS, found
        # by its C functions): two thread pools on the same cores would take turns spinning.
        self.blas = BlasThreads.find()
        self._blas_spinning = False  # a product has run on BLAS's threads since they were last ended
        self._blas_parked: int | None = None  # BLAS's own count, while it is kept on one thread
        self.set_threads(thread_count())

    def set_threads(self, count: int) -> None:
        """Run the kernels' parts on ``count`` threads (1: each kernel on the calling thread);
        without OpenBLAS's thread controls the kernels keep to one."""
        self.threads = count if self.blas is not None else 1
        self.workers = Workers(self.threads)

    def blas_product(self, a: Any, b: Any) -> Any:
        """a @ b on BLAS's own threads. Those threads then spin for a while, waiting for more
        work, on the cores the worker threads need: the next kernel in several parts ends them
        (``run_parts``). Without the means to end them, the product runs in a part per worker
        thread instead."""
        if self.threads == 1 or self.blas is None or not self.blas.can_stop:
            out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
            size = -(-a.shape[0] // self.threads)
            self.run_parts(lambda rows: np.dot(a[rows], b, out=out[rows]),
                           [slice(start, min(start + size, a.shape[0])) for start in range(0, a.shape[0], size)])
            return out
        self.release_blas()  # BLAS starts its threads again for this product
        self._blas_spinning = True
        return a @ b

    def release_blas(self) -> None:
        """Give OpenBLAS back its own thread count if the kernels left it on one thread (see
        ``run_parts``), for products of the program's own that should use every core at once."""
        if self._blas_parked is not None:
            self.blas.set(self._blas_parked)
            self._blas_parked = None

    def run_parts(self, fn: Callable[[Any], Any], parts: Sequence[Any]) -> list:
        """The parts on the worker threads, with BLAS on one thread for each product meanwhile;
        BLAS's own count (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, threadpoolctl) caps the threads.

        After a product on BLAS's threads (``blas_product``), the first kernel in several parts
        ends those threads, and BLAS then keeps one thread, its count "parked", until the next
        such product: OpenBLAS starts its threads again whenever its count is set, and new
        threads spin too. Ending them is safe because the library's own products run only here
        and in ``blas_product``, never while the worker threads run."""
        blas_threads = (self._blas_parked or self.blas.get()) if self.threads > 1 else 1
        if blas_threads == 1:
            return [fn(part) for part in parts]
        count = min(self.threads, blas_threads)
        if self._blas_parked is None:
            self.blas.set(1)
            if not (self._blas_spinning and len(parts) > 1):
                try:
                    return self.workers.run(fn, parts, count=count)
                finally:
                    self.blas.set(blas_threads)
            self.blas.stop()  # its threads would take the cores from the workers
            self._blas_spinning, self._blas_parked = False, blas_threads
        return self.workers.run(fn, parts, count=count)  # BLAS parked on one thread

    def mixed_with(self, other: Backend) -> Backend | None:
        """numpy and numba hold the same NumPy arrays: their tensors mix, and the op runs on the
        backend with compiled kernels (the subclass), as fast and within rounding of the other."""
        if isinstance(other, NumpyBackend):
            return other if isinstance(other, type(self)) else self
        return None

    def is_array(self, obj: Any) -> bool:
        return type(obj) is np.ndarray or isinstance(obj, np.ndarray)

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def from_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def describe(self) -> dict:
        return {"backend": self.name, "numpy": np.__version__, "device": "CPU",
                "memory_cache": "on" if self.caches_memory else "off", "kernel_threads": self.threads}
