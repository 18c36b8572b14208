"""The NumPy (CPU) backend."""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import Backend


class NumpyBackend(Backend):
    name = "numpy"
    xp = np

    def is_array(self, obj: Any) -> bool:
        return type(obj) is np.ndarray or isinstance(obj, np.ndarray)

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def from_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def describe(self) -> dict:
        return {"backend": self.name, "numpy": np.__version__, "device": "CPU"}
