"""Broadcasting, property-based: random broadcast-compatible shapes through + - * / maximum
and where; values against NumPy, gradients against a NumPy reference that sums the
upstream gradient over the broadcast axes."""
from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import mutually_broadcastable_shapes  # noqa: E402

import autograd_cnn as ag  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def np_sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    """The reference un-broadcast: sum the leading axes away, then the axes that were 1."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


# Each op: the engine's call, NumPy's value, and d(out)/da, d(out)/db elementwise.
BINARY = {
    "add": (lambda a, b: a + b, np.add, lambda a, b: (np.ones_like(a + b), np.ones_like(a + b))),
    "sub": (lambda a, b: a - b, np.subtract, lambda a, b: (np.ones_like(a + b), -np.ones_like(a + b))),
    "mul": (lambda a, b: a * b, np.multiply, lambda a, b: (b + 0 * a, a + 0 * b)),
    "div": (lambda a, b: a / b, np.divide, lambda a, b: (1 / b + 0 * a, -a / b ** 2)),
    "maximum": (ag.maximum, np.maximum, lambda a, b: ((a >= b) * 1.0, (a < b) * 1.0)),
}


def _values(rng: np.random.Generator, shape: tuple, away_from_zero: bool = False) -> np.ndarray:
    v = rng.uniform(-2, 2, size=shape)
    if away_from_zero:
        v = np.where(v >= 0, v + 0.5, v - 0.5)
    return v


@pytest.mark.parametrize("op", sorted(BINARY))
@SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=4),
       seed=st.integers(0, 2 ** 16), dtype=st.sampled_from(["float32", "float64"]))
def test_binary_broadcasting(op, shapes, seed, dtype, backend):
    ours, reference, partials = BINARY[op]
    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    a0 = _values(rng, sa).astype(dtype)
    b0 = _values(rng, sb, away_from_zero=(op == "div")).astype(dtype)
    a = ag.tensor(a0, requires_grad=True)
    b = ag.tensor(b0, requires_grad=True)
    out = ours(a, b)
    assert out.shape == shapes.result_shape and out.dtype == np.dtype(dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out.numpy(), reference(a0, b0), rtol=tol, atol=tol)

    upstream = rng.standard_normal(shapes.result_shape).astype(dtype)
    out.backward(ag.tensor(upstream))
    da, db = partials(a0.astype(np.float64), b0.astype(np.float64))
    assert a.grad.shape == sa and b.grad.shape == sb
    assert a.grad.dtype == np.dtype(dtype) and b.grad.dtype == np.dtype(dtype)
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(a.grad.numpy(), np_sum_to(upstream * da, sa), rtol=tol, atol=tol)
    np.testing.assert_allclose(b.grad.numpy(), np_sum_to(upstream * db, sb), rtol=tol, atol=tol)


@SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=3, max_dims=4, max_side=3), seed=st.integers(0, 2 ** 16))
def test_where_broadcasting(shapes, seed, backend):
    rng = np.random.default_rng(seed)
    sc, sa, sb = shapes.input_shapes
    cond = rng.uniform(size=sc) > 0.5
    a0, b0 = _values(rng, sa), _values(rng, sb)
    a = ag.tensor(a0, requires_grad=True)
    b = ag.tensor(b0, requires_grad=True)
    out = ag.where(ag.tensor(cond), a, b)
    np.testing.assert_array_equal(out.numpy(), np.where(cond, a0, b0))
    upstream = rng.standard_normal(shapes.result_shape)
    out.backward(ag.tensor(upstream))
    full_cond = np.broadcast_to(cond, shapes.result_shape)
    assert a.grad.shape == sa and b.grad.shape == sb
    np.testing.assert_allclose(a.grad.numpy(), np_sum_to(np.where(full_cond, upstream, 0.0), sa))
    np.testing.assert_allclose(b.grad.numpy(), np_sum_to(np.where(full_cond, 0.0, upstream), sb))


@SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3), seed=st.integers(0, 2 ** 16))
def test_same_tensor_on_both_sides_accumulates(shapes, seed, backend):
    """x op (x reshaped to broadcast) sends two gradients to one leaf; they must add up."""
    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    a0, b0 = _values(rng, sa), _values(rng, sb)
    a = ag.tensor(a0, requires_grad=True)
    b = ag.tensor(b0, requires_grad=True)
    out = a * b + a
    out.sum().backward()
    ones = np.ones(shapes.result_shape)
    np.testing.assert_allclose(a.grad.numpy(), np_sum_to(ones * b0, sa) + np_sum_to(ones, sa), rtol=1e-12)


def test_incompatible_shapes_are_a_shape_error():
    """The complement: shapes that do not broadcast raise ShapeError naming both."""
    with pytest.raises(ag.ShapeError, match=r"\(2, 3\) and \(2\)"):
        ag.tensor(np.ones((2, 3))) * ag.tensor(np.ones(2))
