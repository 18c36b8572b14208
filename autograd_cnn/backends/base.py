"""The Backend interface: what differs between NumPy and CuPy, and the heavy array kernels.

Kernels are written once against ``self.xp`` (NumPy's API, which CuPy mirrors), so
a backend only overrides what a benchmark shows is worth specialising.
"""
from __future__ import annotations

from typing import Any


class Backend:
    """One array library: its module ``xp``, host transfers, random numbers, kernels."""

    name: str = "?"
    xp: Any = None

    def __init__(self) -> None:
        self._rng = None

    def __repr__(self) -> str:
        return f"<autograd_cnn backend {self.name!r}>"

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        # ag.get_backend() == "numpy" reads naturally in user code and tests.
        if isinstance(other, str):
            return other == self.name
        return other is self

    def __hash__(self) -> int:
        return hash(self.name)

    # --- arrays -----------------------------------------------------------
    def is_array(self, obj: Any) -> bool:
        """True when ``obj`` is this backend's array type."""
        return isinstance(obj, self.xp.ndarray)

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """Data (host or this backend's) as this backend's array."""
        return self.xp.asarray(data, dtype=dtype)

    def to_host(self, array: Any) -> Any:
        """A NumPy array with the same values."""
        raise NotImplementedError

    def from_host(self, array: Any) -> Any:
        """This backend's array from a NumPy array."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued work (a no-op on the CPU); benchmarks call it before reading a clock."""

    # --- random numbers ---------------------------------------------------
    @property
    def rng(self) -> Any:
        """The backend's random generator, seeded by ``ag.manual_seed``."""
        if self._rng is None:
            self._rng = self.xp.random.default_rng()
        return self._rng

    def seed(self, seed: int) -> None:
        self._rng = self.xp.random.default_rng(seed)

    # --- device description (for `autograd-cnn info`) ---------------------
    def describe(self) -> dict:
        return {"backend": self.name}

    # --- indexing ---------------------------------------------------------
    def scatter_add(self, out: Any, index: Any, values: Any) -> None:
        """out[index] += values, adding repeated indices up (getitem's backward)."""
        self.xp.add.at(out, index, values)

    # --- special functions ------------------------------------------------
    def erf(self, x: Any) -> Any:
        """The error function (NumPy has none; GELU needs it)."""
        import math

        import numpy as np

        host = self.to_host(x)
        out = np.frompyfunc(math.erf, 1, 1)(host).astype(host.dtype)
        return self.from_host(out)
