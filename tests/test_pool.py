"""Pooling forward values against plain loops, first-maximum ties, PyTorch cross-checks, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn.backends import pooling
from autograd_cnn.errors import ShapeError


def _t(a, requires_grad=False):
    """A float64 tensor on the backend under test (the default one)."""
    return ag.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad, backend=ag.get_backend())


def _out(size, k, s, p, d, ceil_mode):
    span = d * (k - 1) + 1
    n = (math.ceil if ceil_mode else math.floor)((size + 2 * p - span) / s) + 1
    if ceil_mode and (n - 1) * s >= size + p:
        n -= 1
    return n


def loop_pool2d(x, k, s, p, d=1, ceil_mode=False, how="max", count_include_pad=True):
    """Pooling by its definition: visit each window's elements, skipping those outside."""
    n, c, h, w = x.shape
    oh, ow = _out(h, k, s, p, d, ceil_mode), _out(w, k, s, p, d, ceil_mode)
    y = np.zeros((n, c, oh, ow))
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    values, padded = [], 0
                    for u in range(k):
                        for v in range(k):
                            r, q = i * s - p + u * d, j * s - p + v * d
                            if 0 <= r < h and 0 <= q < w:
                                values.append(x[b, ch, r, q])
                            elif r < h + p and q < w + p:
                                padded += 1  # a zero of the padding, not the ceil_mode overhang
                    if how == "max":
                        y[b, ch, i, j] = max(values)
                    else:
                        count = len(values) + (padded if count_include_pad else 0)
                        y[b, ch, i, j] = sum(values) / count
    return y


MAX_OPTIONS = [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 1, False), (2, 1, 0, 2, False), (3, 3, 1, 1, True)]


@pytest.mark.parametrize("k,s,p,d,ceil_mode", MAX_OPTIONS)
def test_max_pool2d_matches_loops(backend, k, s, p, d, ceil_mode, parts):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
    y = F.max_pool2d(_t(x), k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode).numpy()
    np.testing.assert_array_equal(y, loop_pool2d(x, k, s, p, d, ceil_mode))


@pytest.mark.parametrize("k,s,p,ceil_mode,include", [(2, 2, 0, False, True), (3, 2, 1, True, True),
                                                      (3, 2, 1, True, False), (3, 1, 1, False, False)])
def test_avg_pool2d_matches_loops(backend, k, s, p, ceil_mode, include):
    x = np.random.default_rng(1).standard_normal((2, 2, 7, 6))
    y = F.avg_pool2d(_t(x), k, stride=s, padding=p, ceil_mode=ceil_mode, count_include_pad=include).numpy()
    np.testing.assert_allclose(y, loop_pool2d(x, k, s, p, 1, ceil_mode, "avg", include), atol=1e-12)


def test_pool1d_matches_loops(backend):
    x = np.random.default_rng(2).standard_normal((2, 3, 9))
    y = F.max_pool1d(_t(x), 3, stride=2, padding=1, ceil_mode=True).numpy()
    np.testing.assert_array_equal(y, _loop_1d(x, 3, 2, 1, True, "max"))
    y = F.avg_pool1d(_t(x), 3, stride=2, padding=1, count_include_pad=False).numpy()
    np.testing.assert_allclose(y, _loop_1d(x, 3, 2, 1, False, "avg", False), atol=1e-12)


def _loop_1d(x, k, s, p, ceil_mode, how, include=True):
    n, c, w = x.shape
    ow = _out(w, k, s, p, 1, ceil_mode)
    y = np.zeros((n, c, ow))
    for j in range(ow):
        lo, hi = j * s - p, j * s - p + k
        window = x[:, :, max(lo, 0):min(hi, w)]
        if how == "max":
            y[:, :, j] = window.max(axis=2)
        else:
            count = (min(hi, w + p) - lo) if include else window.shape[2]
            y[:, :, j] = window.sum(axis=2) / count
    return y


def _max_pool_and_gradient(x0, g0, monkeypatch, general=False):
    """max_pool2d(x0, 2) and its gradient for g0, by the 2x2 fast path or (general=True) the general one."""
    with monkeypatch.context() as patch:
        if general:
            patch.setattr(pooling, "tiles_by_two", lambda *window: False)
        x = _t(x0, requires_grad=True)
        y = F.max_pool2d(x, 2)
        y.backward(_t(g0))
    return y.numpy(), x.grad.numpy()


@pytest.mark.parametrize("shape", [(3, 4, 8, 6), (2, 3, 7, 9)], ids=["even", "odd"])
@pytest.mark.parametrize("values", ["distinct", "ties", "relu zeros"])
def test_max_pool_2x2_fast_path_equals_the_general_path(backend, monkeypatch, parts, shape, values):
    """The 2x2 stride-2 fast path gives the general path's output, mask and gradient, ties included."""
    rng = np.random.default_rng(6)
    x0 = {"distinct": rng.permutation(math.prod(shape)).reshape(shape) / 7.0,
          "ties": rng.integers(0, 3, size=shape).astype(float),
          "relu zeros": np.maximum(rng.standard_normal(shape), 0)}[values]
    g0 = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2))
    fast, general = _max_pool_and_gradient(x0, g0, monkeypatch), _max_pool_and_gradient(x0, g0, monkeypatch, True)
    np.testing.assert_array_equal(fast[0], general[0])
    np.testing.assert_array_equal(fast[1], general[1])
    np.testing.assert_array_equal(fast[0], loop_pool2d(x0, 2, 2, 0))


def test_max_pool_2x2_reads_any_layout(backend, parts):
    """The fast path takes channels-first memory too (a user's image, not a conv's output)."""
    x0 = np.random.default_rng(7).standard_normal((2, 3, 6, 4))
    channels_last = np.ascontiguousarray(x0.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for x in (x0, channels_last):
        np.testing.assert_array_equal(F.max_pool2d(_t(x), 2).numpy(), loop_pool2d(x0, 2, 2, 0))


def test_max_pool_gradient_goes_to_the_first_maximum_only(backend):
    # Every window of the 2x2 pooling holds a tie; PyTorch sends the gradient to the first
    # maximum in row-major order, and so do we.
    x = _t([[[[1.0, 1.0, 0.0, 2.0],
              [1.0, 0.0, 2.0, 2.0],
              [5.0, 3.0, 4.0, 4.0],
              [3.0, 5.0, 4.0, 4.0]]]], requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    expected = [[1, 0, 0, 1], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], expected)
    # Overlapping windows (stride 1) each add one to their own first maximum.
    x.grad = None
    F.max_pool2d(x, 2, stride=1).sum().backward()
    assert x.grad.numpy().sum() == 9
    assert x.grad.numpy()[0, 0, 0, 0] == 1 and x.grad.numpy()[0, 0, 0, 1] == 0


def test_lecture_max_pooling_example(backend):
    x = _t([[[[4, 6, 1, 1], [1, 3, 1, 3], [4, 0, 0, 8], [8, 5, 4, 0]]]])
    np.testing.assert_array_equal(F.max_pool2d(x, 2).numpy()[0, 0], [[6, 3], [8, 8]])


def test_global_and_adaptive_pooling(backend):
    x = np.random.default_rng(3).standard_normal((2, 3, 5, 7))
    np.testing.assert_allclose(F.global_avg_pool2d(_t(x)).numpy(), x.mean(axis=(2, 3)), atol=1e-12)
    np.testing.assert_array_equal(F.global_max_pool2d(_t(x)).numpy(), x.max(axis=(2, 3)))
    y = F.adaptive_avg_pool2d(_t(x), (2, 3)).numpy()
    for i in range(2):
        for j in range(3):
            r0, r1 = (i * 5) // 2, -(-(i + 1) * 5 // 2)
            c0, c1 = (j * 7) // 3, -(-(j + 1) * 7 // 3)
            np.testing.assert_allclose(y[:, :, i, j], x[:, :, r0:r1, c0:c1].mean(axis=(2, 3)), atol=1e-12)
    assert F.adaptive_avg_pool2d(_t(x[:, :, :4, :6]), 2).shape == (2, 3, 2, 2)


def test_pooling_keeps_float32(backend):
    x = ag.randn(2, 3, 6, 6, requires_grad=True)
    for y in (F.max_pool2d(x, 2), F.avg_pool2d(x, 3, stride=1, padding=1)):
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.dtype == np.float32
        x.grad = None


@pytest.mark.parametrize("call,words", [
    (lambda: F.max_pool2d(ag.randn(1, 4, 4), 2), ["max_pool2d", "4-D", "(1, 4, 4)"]),
    (lambda: F.max_pool2d(ag.randn(1, 1, 2, 2), 3), ["max_pool2d", "larger", "(1, 1, 2, 2)"]),
    (lambda: F.max_pool2d(ag.randn(1, 1, 4, 4), 2, padding=2), ["max_pool2d", "padding", "half"]),
    (lambda: F.avg_pool2d(ag.randn(1, 1, 4, 4), 2, stride=0), ["avg_pool2d", "stride", ">= 1"]),
    (lambda: F.max_pool1d(ag.randn(1, 1, 4, 4), 2), ["max_pool1d", "3-D"]),
    (lambda: F.global_avg_pool2d(ag.randn(2, 3)), ["global_avg_pool2d", "4-D", "(2, 3)"]),
])
def test_bad_inputs_raise_clear_shape_errors(call, words):
    with pytest.raises((ShapeError, ag.ArgumentError)) as err:  # a bad setting (stride=0) is an ArgumentError
        call()
    for word in words:
        assert word in str(err.value)


def test_pooling_matches_pytorch():
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional
    x0 = np.random.default_rng(4).standard_normal((2, 3, 9, 8))
    cases = [(F.max_pool2d, fn.max_pool2d, dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
             (F.avg_pool2d, fn.avg_pool2d, dict(kernel_size=(3, 2), stride=(2, 3), padding=1, ceil_mode=True,
                                                 count_include_pad=False)),
             (F.adaptive_avg_pool2d, fn.adaptive_avg_pool2d, dict(output_size=(4, 3)))]
    for ours_fn, torch_fn, options in cases:
        x, tx = _t(x0, True), torch.tensor(x0, requires_grad=True)
        y, ty = ours_fn(x, **options), torch_fn(tx, **options)
        g = np.random.default_rng(5).standard_normal(y.shape)
        y.backward(_t(g))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-12)
