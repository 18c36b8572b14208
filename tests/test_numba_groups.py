"""The numba backend's grouped convolutions (depthwise and several channels per group) and max
pooling's double backward against the NumPy reference: outputs and gradients equal to rounding,
on the whole batch and in parts on two worker threads (the ``parts`` fixture)."""
from __future__ import annotations

import numpy as np
import pytest
from numba_compare import assert_same

import autograd_cnn as ag
import autograd_cnn.functional as F

pytest.importorskip("numba")

from autograd_cnn.backends import numba_groups  # noqa: E402  (needs numba)

TOLERANCE = {np.float32: dict(rtol=3e-5, atol=3e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
DTYPES = [np.float32, np.float64]
RNG = np.random.default_rng(11)


def _assert_same(fn, arrays: list, dtype) -> None:
    assert_same(fn, arrays, dtype, TOLERANCE)


GROUPED = [  # (x shape, weight shape, keyword arguments): depthwise first, then more channels per group
    ((3, 4, 9, 8), (4, 1, 3, 3), dict(groups=4)),
    ((2, 3, 10, 9), (6, 1, 3, 2), dict(groups=3, stride=2, padding=1)),  # channel multiplier 2
    ((2, 5, 11, 10), (5, 1, 2, 3), dict(groups=5, dilation=(2, 1), padding=(1, 2), stride=(1, 2))),
    ((3, 8, 8, 9), (8, 2, 3, 3), dict(groups=4, padding="same")),
    ((2, 6, 9, 7), (9, 2, 2, 3), dict(groups=3, stride=(2, 1), dilation=2, padding=1)),
    ((2, 4, 7, 7), (2, 2, 3, 3), dict(groups=2, stride=2)),  # one output channel per group
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, kwargs", GROUPED)
@pytest.mark.parametrize("bias", [True, False])
def test_grouped_conv2d_and_its_gradients_match_numpy(parts, dtype, x_shape, w_shape, kwargs, bias):
    arrays = [RNG.standard_normal(x_shape), RNG.standard_normal(w_shape)]
    if bias:
        arrays.append(RNG.standard_normal(w_shape[0]))
    _assert_same(lambda *t: F.conv2d(*t, **kwargs), arrays, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_conv1d_and_transposed_conv_match_numpy(parts, dtype, groups):
    """conv1d and the transposed convolution run through the same grouped kernels."""
    x1, w1 = RNG.standard_normal((3, 4, 13)), RNG.standard_normal((8, 4 // groups, 3))
    _assert_same(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, groups=groups),
                 [x1, w1, RNG.standard_normal(8)], dtype)
    x2, w2 = RNG.standard_normal((2, 4, 5, 6)), RNG.standard_normal((4, 8 // groups, 3, 2))
    _assert_same(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1,
                                                    groups=groups, dilation=(1, 2)),
                 [x2, w2, RNG.standard_normal(8)], dtype)


def test_grouped_kernels_are_the_compiled_ones(monkeypatch):
    """A grouped conv on numba runs the compiled gather and col2im (and the depthwise loops), not
    the NumPy backend's batched matmul."""
    called = []
    for name in ("gather_group_windows", "add_group_windows", "depthwise_windows", "depthwise_spread",
                 "depthwise_weight_grad"):
        compiled = getattr(numba_groups, name)
        monkeypatch.setattr(numba_groups, name, lambda *a, _f=compiled, _n=name: called.append(_n) or _f(*a))
    for w_shape, groups in (((4, 1, 3, 3), 4), ((4, 2, 3, 3), 2)):
        x = ag.tensor(RNG.standard_normal((2, 4, 6, 6)), requires_grad=True, backend="numba")
        w = ag.tensor(RNG.standard_normal(w_shape), requires_grad=True, backend="numba")
        F.conv2d(x, w, groups=groups).sum().backward()
    assert sorted(set(called)) == ["add_group_windows", "depthwise_spread", "depthwise_weight_grad",
                                   "depthwise_windows", "gather_group_windows"]


def _max_pool_double_backward(x, v, **window):
    """max_pool2d's input gradient as a graph (create_graph), then the gradient of its weighted
    sum: the second backward runs MaxPool2dGather."""
    y = F.max_pool2d(x, **window)
    (gx,) = ag.grad((y * y).sum(), x, create_graph=True)
    return ag.grad((gx * v).sum(), x)[0].numpy(), gx.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                    dict(kernel_size=2, stride=1, dilation=2)])
def test_max_pool_double_backward_matches_numpy(parts, dtype, window):
    x_host = RNG.permutation(2 * 3 * 8 * 7).reshape(2, 3, 8, 7).astype(dtype) / 10  # distinct: no ties
    v_host = RNG.standard_normal(x_host.shape).astype(dtype)
    results = []
    for backend in ("numpy", "numba"):
        x = ag.tensor(x_host, requires_grad=True, backend=backend)
        results.append(_max_pool_double_backward(x, ag.tensor(v_host, backend=backend), **window))
    for ref, got in zip(*results):
        assert got.dtype == ref.dtype
        np.testing.assert_allclose(got, ref, **TOLERANCE[dtype])


def test_max_pool_gather_kernel_equals_numpy_with_ties_and_infinities():
    """The compiled gather adds each offset's product as NumPy does: an infinity not chosen gives
    NaN (inf * 0) in both, and a tie sends the first maximum."""
    numpy_backend, numba_backend = ag.get_backend("numpy"), ag.get_backend("numba")
    x = np.zeros((1, 2, 4, 4), dtype=np.float32)
    x[0, 1, 0, 0] = np.inf
    x[0, 0, 2:, 2:] = 3.0  # a tie in one window
    window = ((2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1))
    _, mask = numba_backend.max_pool2d_with_mask(x, *window, (2, 2))
    other = RNG.standard_normal(x.shape).astype(np.float32)
    other[0, 1, 1, 1] = np.inf
    with np.errstate(invalid="ignore"):  # inf * 0, on purpose
        ref = numpy_backend.max_pool2d_gather(other, mask, *window)
    got = numba_backend.max_pool2d_gather(other, mask, *window)
    np.testing.assert_array_equal(got, ref)
    assert np.isnan(got[0, 1, 0, 0]) and np.isnan(got).sum() == 1
