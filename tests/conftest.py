"""Shared fixtures: every backend present runs the same tests."""
from __future__ import annotations

import pytest

import autograd_cnn as ag
from autograd_cnn.backends import cupy_usable

_CUPY_OK, _CUPY_WHY = cupy_usable()

BACKENDS = [
    "numpy",
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
