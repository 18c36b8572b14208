"""The numba backend's batch norm and dropout against the NumPy reference: outputs, gradients and
running statistics equal to rounding in float32 and float64, in every layout batch norm meets (a
conv's channels-last output, C-contiguous (N, C), (N, C, L), (N, C, H, W)); dropout's mask the same
for one seed; sums repeated to the last bit run to run; other dtypes on the NumPy kernels."""
from __future__ import annotations

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import nn

pytest.importorskip("numba")

DTYPES = [np.float32, np.float64]
# Relative to the largest magnitude of each result: float32 sums and differences round on both
# backends (numba sums in float64, NumPy in float32), float64 agrees to a few ulps of the scale.
TOLERANCE = {np.float32: 5e-5, np.float64: 1e-12}
RNG = np.random.default_rng(11)

# (shape of the array made, axes that turn it into (N, C, ...)): the second form of each shape is
# a channels-last array viewed as (N, C, ...), as a conv's output is on the numba backend.
LAYOUTS = {
    "(N, C)": ((40, 6), None),
    "(N, C, L)": ((5, 4, 33), None),
    "(N, C, L) channels-last": ((5, 33, 4), (0, 2, 1)),
    "(N, C, H, W)": ((4, 3, 7, 9), None),
    "(N, C, H, W) channels-last": ((4, 7, 9, 3), (0, 3, 1, 2)),
    "large, in parts": ((64, 26, 26, 16), (0, 3, 1, 2)),
    "large planes, in parts": ((64, 16, 26, 26), None),
}


def _batch_norm_on(backend: str, x: np.ndarray, axes, dtype, training: bool, affine: bool = True) -> list:
    """y, the gradients of x, weight and bias (of a weighted sum of y), and the running statistics."""
    c = x.shape[1] if axes is None else x.shape[axes[1]]
    rng = np.random.default_rng(2)
    t = ag.tensor(x.astype(dtype), requires_grad=True, backend=backend)
    weight = ag.tensor(rng.standard_normal(c).astype(dtype), requires_grad=True, backend=backend)
    bias = ag.tensor(rng.standard_normal(c).astype(dtype), requires_grad=True, backend=backend)
    running_mean, running_var = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    xin = t if axes is None else t.transpose(*axes)
    y = F.batch_norm(xin, running_mean, running_var, weight if affine else None, bias if affine else None,
                     training=training, momentum=0.3)
    weights = ag.tensor(np.linspace(-1, 1, y.size).reshape(y.shape).astype(dtype), backend=backend)
    (y * weights).sum().backward()
    grads = [t.grad.numpy()] + ([weight.grad.numpy(), bias.grad.numpy()] if affine else [])
    return [y.numpy()] + grads + [running_mean, running_var]


def _assert_close(reference: list, compiled: list, dtype) -> None:
    for ref, got in zip(reference, compiled):
        assert got.dtype == ref.dtype and got.shape == ref.shape
        scale = max(float(np.max(np.abs(ref))), 1.0)
        np.testing.assert_allclose(got, ref, rtol=0, atol=TOLERANCE[dtype] * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_numpy(dtype, layout, training):
    shape, axes = LAYOUTS[layout]
    x = RNG.standard_normal(shape) * 3 + 2  # an offset mean: the variance must be taken about it
    _assert_close(_batch_norm_on("numpy", x, axes, dtype, training),
                  _batch_norm_on("numba", x, axes, dtype, training), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_without_weights_matches_numpy(dtype):
    x = RNG.standard_normal((6, 5, 4, 3))
    _assert_close(_batch_norm_on("numpy", x, None, dtype, True, affine=False),
                  _batch_norm_on("numba", x, None, dtype, True, affine=False), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_after_a_conv_keeps_its_channels_last_layout(dtype):
    x, w = RNG.standard_normal((8, 3, 12, 12)).astype(dtype), RNG.standard_normal((16, 3, 3, 3)).astype(dtype)
    outputs = []
    for backend in ("numpy", "numba"):
        with ag.use_backend(backend):
            ag.manual_seed(0)
            bn = nn.BatchNorm2d(16).double() if dtype == np.float64 else nn.BatchNorm2d(16)
        conv = F.conv2d(ag.tensor(x, backend=backend), ag.tensor(w, requires_grad=True, backend=backend))
        y = F.relu(bn(conv))  # ReLU's backward hands batch norm a gradient in the conv's layout
        (y * y).sum().backward()
        if backend == "numba":
            assert conv.data.strides[1] == conv.data.itemsize  # the conv's output is channels-last
            assert y.data.strides[1] == y.data.itemsize  # and batch norm kept that layout
        outputs.append([y.numpy(), bn.weight.grad.numpy(), bn.bias.grad.numpy(), bn.running_mean.numpy(),
                        bn.running_var.numpy()])
    _assert_close(outputs[0], outputs[1], dtype)


def test_batch_norm_repeats_its_sums_to_the_last_bit():
    # Several parts on the worker threads: their sums are added in the parts' order, every run.
    x = RNG.standard_normal((64, 26, 26, 32)).astype(np.float32)
    runs = [_batch_norm_on("numba", x, (0, 3, 1, 2), np.float32, True) for _ in range(3)]
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            np.testing.assert_array_equal(a, b)


def test_batch_norm_of_float16_falls_back_to_the_numpy_kernels():
    x = RNG.standard_normal((6, 3, 4, 4))
    outputs = [_batch_norm_on(b, x, None, np.float16, True) for b in ("numpy", "numba")]
    for ref, got in zip(*outputs):
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int64])
@pytest.mark.parametrize("shape, axes", [((7, 5), None), ((300, 500), None), ((3, 4, 5), None),
                                         ((4, 5, 6, 3), (0, 3, 1, 2)), ((64, 26, 26, 32), (0, 3, 1, 2))])
@pytest.mark.parametrize("p", [0.1, 0.5, 1.0])
def test_dropout_gives_the_numpy_mask_for_a_seed(dtype, shape, axes, p):
    x = (RNG.standard_normal(shape) * 10).astype(dtype)
    outputs = []
    for backend in ("numpy", "numba"):
        t = ag.tensor(x, requires_grad=dtype != np.int64, backend=backend)
        ag.manual_seed(5)
        y = F.dropout(t if axes is None else t.transpose(*axes), p)
        results = [y.numpy()]
        if t.requires_grad:
            y.sum().backward()  # x's gradient is the mask
            results.append(t.grad.numpy())
        outputs.append(results)
    for ref, got in zip(*outputs):
        assert got.dtype == ref.dtype == (np.float64 if dtype == np.int64 else dtype)
        np.testing.assert_array_equal(got, ref)
    kept = np.count_nonzero(outputs[1][0]) / x.size
    assert kept == 0 if p == 1 else abs(kept - (1 - p)) < 0.2  # a mask, not all or nothing
