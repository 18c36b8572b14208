"""The NumPy (CPU) backend: the reference, plain NumPy, written to be read.

Every kernel is the generic one written against ``xp`` (``xp_backend.py`` says how they come
together); each runs on the calling thread, over parts of a large batch in turn where that keeps
a part's passes in the core's cache (``Backend.batch_parts``), and NumPy multiplies matrices on
its BLAS's own threads, as in any program. Nothing here changes the process: no threads of its
own, no BLAS or ``malloc`` setting. The ``numba`` backend (``numba_backend.py``) is the fast
CPU backend: the same arrays, compiled kernels, worker threads.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import Backend
from .xp_backend import XpBackend


class NumpyBackend(XpBackend):
    """NumPy arrays on the CPU: the generic kernels, as written."""

    name = "numpy"
    xp = np

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
        return {"backend": self.name, "numpy": np.__version__, "device": "CPU"}
