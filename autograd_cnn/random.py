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
    for i, backend in enumerate(backends.all_loaded()):
        backend.seed(_seed + i)


def host_rng() -> np.random.Generator:
    """The seeded NumPy generator for host-side randomness (data shuffling)."""
    return _host_rng


def backend_rng(backend: Any) -> Any:
    """The backend's generator; a backend loaded after manual_seed is seeded on first use."""
    if not backend.rng_started and _seed is not None:
        backend.seed(_seed + 7919)  # a different stream from the host's
    return backend.rng
