"""Seeding: ``ag.manual_seed(n)`` makes initialisation, dropout and shuffling repeat exactly."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import backends

_seed: int | None = None
_host_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed every backend's generator and the host generator used for shuffling."""
    global _seed, _host_rng
    _seed = int(seed)
    _host_rng = np.random.default_rng(_seed)
    for backend in backends.all_loaded():
        backend.seed(_seed + _offset(backend))


def host_rng() -> np.random.Generator:
    """The seeded NumPy generator for host-side randomness (data shuffling)."""
    return _host_rng


def backend_rng(backend: Any) -> Any:
    """The backend's generator; a backend loaded after manual_seed is seeded on first use."""
    if not backend.rng_started and _seed is not None:
        backend.seed(_seed + _offset(backend))
    return backend.rng


def _offset(backend: Any) -> int:
    """How far a backend's stream starts from the seed: 0 for the host backends (numpy and numba
    draw the same numbers from one seed, whether loaded before manual_seed or after), another
    stream for a GPU's."""
    return 0 if backend.xp is np else 7919
