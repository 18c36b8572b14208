"""One op on the NumPy reference and on the numba backend: its output and its inputs' gradients,
compared to rounding (``tests/test_numba_*.py``)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

import autograd_cnn as ag


def on_both(fn: Callable, arrays: list, dtype: type) -> list:
    """fn's output and its inputs' gradients (of a weighted sum of the output) on numpy and on numba."""
    results = []
    for backend in ("numpy", "numba"):
        inputs = [ag.tensor(a.astype(dtype), requires_grad=True, backend=backend) for a in arrays]
        y = fn(*inputs)
        assert y.backend_object == backend
        weights = ag.tensor(np.linspace(-1, 1, y.size).reshape(y.shape).astype(dtype), backend=backend)
        (y * weights).sum().backward()
        results.append([y.numpy()] + [t.grad.numpy() for t in inputs])
    return results


def assert_same(fn: Callable, arrays: list, dtype: type, tolerance: dict) -> None:
    """fn gives numba the NumPy reference's output and gradients, dtypes and shapes, to
    ``tolerance[dtype]`` (``assert_allclose``'s rtol and atol)."""
    reference, compiled = on_both(fn, arrays, dtype)
    for ref, got in zip(reference, compiled):
        assert got.dtype == ref.dtype and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, **tolerance[dtype])
