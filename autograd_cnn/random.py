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


def get_state() -> dict:
    """The state of every generator: the host's (shuffling) and each loaded backend's (dropout,
    initialisation), as numbers and strings that ``ag.save`` stores; ``set_state`` puts it back,
    so that a resumed run draws what an uninterrupted one would (``nn.BackupAndRestore``).
    A generator that is not NumPy's (CuPy's) is recorded as None and left as it is on restore."""
    return {"seed": _seed, "host": _host_rng.bit_generator.state,
            "backends": {b.name: _state_of(b) for b in backends.all_loaded()}}


def set_state(state: dict) -> None:
    """Restore what ``get_state`` returned."""
    global _seed, _host_rng
    _seed = state["seed"]
    _host_rng = _generator_at(state["host"])
    for backend in backends.all_loaded():
        saved = state["backends"].get(backend.name)
        if saved is not None and backend.xp is np:
            backend._rng = _generator_at(saved)


def _state_of(backend: Any) -> dict | None:
    if not backend.rng_started or not isinstance(backend.rng, np.random.Generator):
        return None
    return backend.rng.bit_generator.state


def _generator_at(state: dict) -> np.random.Generator:
    """A NumPy generator of the saved kind (PCG64 for default_rng) at the saved state."""
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _offset(backend: Any) -> int:
    """How far a backend's stream starts from the seed: 0 for the host backends (numpy and numba
    draw the same numbers from one seed, whether loaded before manual_seed or after), another
    stream for a GPU's."""
    return 0 if backend.xp is np else 7919
