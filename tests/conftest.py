"""Shared fixtures: every backend present runs the same tests."""
from __future__ import annotations

import dataclasses
import http.server

import pytest

import autograd_cnn as ag
from autograd_cnn import data
from autograd_cnn.autograd import Function
from autograd_cnn.backends import Backend, cupy_usable, numba_installed
from autograd_cnn.backends.threads import Workers

_CUPY_OK, _CUPY_WHY = cupy_usable()
NUMBA_OK = numba_installed()

BACKENDS = [
    "numpy",
    pytest.param("numba", marks=pytest.mark.skipif(not NUMBA_OK, reason="Numba is not installed")),
    pytest.param("cupy", marks=[pytest.mark.gpu,
                                pytest.mark.skipif(not _CUPY_OK, reason=f"CuPy backend unusable: {_CUPY_WHY}")]),
]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """The name of a backend, made the default for the test's duration."""
    with ag.use_backend(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _seeded():
    ag.manual_seed(0)
    yield


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No data anywhere but the package, and every mirror a closed port on 127.0.0.1."""
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "DEBIAN_DATA", tmp_path / "debian")
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    closed = f"http://127.0.0.1:{server.server_address[1]}/"
    server.server_close()
    for name, dataset in data.DATASETS.items():
        monkeypatch.setitem(data.DATASETS, name, dataclasses.replace(dataset, mirrors=(closed,)))
    return tmp_path


@pytest.fixture
def applied_functions(monkeypatch):
    """The set of Function classes applied while the test runs (for coverage tests)."""
    used = set()
    original = Function.apply.__func__

    def recording_apply(cls, *args, **kwargs):
        used.add(cls)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Function, "apply", classmethod(recording_apply))
    return used


class BlasStandIn:
    """OpenBLAS's thread controls as the numba backend sees them (two threads of its own, which
    ``stop`` can end), counting the times its threads are ended: for tests where the real
    ones are missing or held to one thread."""

    can_stop = True

    def __init__(self) -> None:
        self.count, self.stops = 2, 0

    def get(self) -> int:
        return self.count

    def set(self, count: int) -> None:
        self.count = count

    def stop(self) -> None:
        self.stops += 1


PARTS = ["whole batch", "one image a part"]


@pytest.fixture(params=PARTS)
def parts(request, monkeypatch):
    """Each kernel on the whole batch, then in parts of one image on two worker threads: the CPU's
    path for a large batch, taken here by the smallest (a GPU takes a batch whole either way)."""
    if request.param == PARTS[1]:
        monkeypatch.setattr(Backend, "part_bytes", 1)
        monkeypatch.setattr(Backend, "min_parallel_bytes", 0)
        if NUMBA_OK:  # the worker threads are the numba backend's (numpy runs its parts in turn)
            cpu = ag.get_backend("numba")
            if cpu.threads < 2 or cpu.blas is None or cpu.blas.get() < 2:  # one core, or BLAS held to one thread
                monkeypatch.setattr(cpu, "threads", 2)
                monkeypatch.setattr(cpu, "workers", Workers(2))
                monkeypatch.setattr(cpu, "blas", BlasStandIn())
    return request.param
