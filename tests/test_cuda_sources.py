"""The CuPy backend's fused CUDA kernels, checked on the CPU: each loop body is compiled as
C++ (one loop over ``i`` in place of the GPU's threads) and compared with the NumPy kernels.

This catches index and order mistakes where no GPU is present; on a GPU the same kernels
run the whole op table (the ``backend`` fixture).
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from autograd_cnn.backends import cuda_sources, get_backend

COMPILER = shutil.which("g++") or shutil.which("c++")
pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C++ compiler (g++) to build the kernel bodies")

_C_TYPES = {"T": "T", "I": "long long", "int32": "int", "int64": "long long", "bool": "bool"}
_CTYPES = {"T": ctypes.c_float, "int": ctypes.c_int, "long long": ctypes.c_longlong}  # T is float here

# What every translated kernel needs; PRELUDE, kernel_params and c_function also build the
# CuPy stand-in (tests/cupy_standin).
PRELUDE = """
#include <cmath>
#include <cstddef>
using std::exp;
using std::log;
using std::sqrt;
typedef float T;  // the kernels' element type, as CuPy binds it for float32 arrays
struct Indexer { std::ptrdiff_t n; std::ptrdiff_t size() const { return n; } };
"""


def kernel_params(source: cuda_sources.KernelSource) -> list:
    """(name, C type, is_array, is_raw) for each parameter, inputs then outputs."""
    out = []
    for text, is_output in ((source.in_params, False), (source.out_params, True)):
        for param in text.split(","):
            words = param.split()
            raw = words[0] == "raw"
            ctype, name = _C_TYPES[words[-2]], words[-1]
            out.append((name, ctype, raw or is_output or name in source.arrays, raw))
    return out


def c_function(source: cuda_sources.KernelSource) -> str:
    """The kernel body as a C++ function: one loop over ``i`` where the GPU runs one thread each."""
    params = kernel_params(source)
    args = ", ".join(f"{ctype}* {name}_ptr" if is_array else f"{ctype} {name}" for name, ctype, is_array, _ in params)
    binds = []
    for name, ctype, is_array, raw in params:
        if is_array:
            binds.append(f"{ctype}* {name} = {name}_ptr;" if raw else f"{ctype}& {name} = {name}_ptr[i];")
    return (f'extern "C" void {source.name}(std::ptrdiff_t size, {args}) {{\n'
            "  const Indexer _ind{size};\n"
            "  for (std::ptrdiff_t i = 0; i < size; ++i) {\n    " + "\n    ".join(binds)
            + "\n    {" + source.operation + "}\n  }\n}\n")


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """The kernel bodies as one shared library of C functions, one per kernel."""
    folder = tmp_path_factory.mktemp("kernels")
    code = PRELUDE + "\n".join(c_function(s) for s in cuda_sources.ALL)
    (folder / "kernels.cpp").write_text(code)
    result = subprocess.run([COMPILER, "-O1", "-shared", "-fPIC", "-std=c++17", "-o", str(folder / "kernels.so"),
                             str(folder / "kernels.cpp")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(folder / "kernels.so"))


def _run(lib, source: cuda_sources.KernelSource, size: int, *args) -> None:
    """Call a kernel over ``size`` elements; arrays go as pointers, numbers as their C type."""
    c_args = []
    for (_, ctype, is_array, _), value in zip(kernel_params(source), args):
        if is_array:
            assert value.flags.c_contiguous
            c_args.append(ctypes.c_void_p(value.ctypes.data))
        else:
            c_args.append(_CTYPES[ctype](value))
    getattr(lib, source.name)(ctypes.c_ssize_t(size), *c_args)


NP = get_backend("numpy")
GEOMETRIES = [  # kernel, stride, ((top, bottom), (left, right)), dilation, (H, W)
    ((2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), (6, 8)),
    ((2, 2), (2, 2), ((0, 1), (0, 1)), (1, 1), (5, 7)),  # ceil_mode: the last window hangs over
    ((3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), (7, 6)),
    ((3, 2), (1, 2), ((1, 0), (0, 1)), (2, 1), (8, 7)),
    ((3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), (5, 5)),
]


def _out_hw(kernel, stride, padding, dilation, hw) -> tuple:
    return tuple((size + sum(pad) - d * (k - 1) - 1) // s + 1
                 for size, k, s, pad, d in zip(hw, kernel, stride, padding, dilation))


def _tied_image(rng, hw) -> np.ndarray:
    """Small integers: many ties, so the first-maximum rule is exercised."""
    return rng.integers(-3, 4, size=(2, 3) + hw).astype(np.float32)


@pytest.mark.parametrize("kernel,stride,padding,dilation,hw", GEOMETRIES)
def test_max_pool_kernel_matches_numpy(kernels, kernel, stride, padding, dilation, hw):
    x, out_hw = _tied_image(np.random.default_rng(0), hw), _out_hw(kernel, stride, padding, dilation, hw)
    y_ref, mask_ref = NP.max_pool2d_with_mask(x, kernel, stride, padding, dilation, out_hw)
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    y = np.full((2,) + out_hw + (3,), np.nan, dtype=np.float32)
    mask = np.zeros((kernel[0] * kernel[1],) + y.shape, dtype=bool)
    _run(kernels, cuda_sources.MAX_POOL2D, y.size, xh,
         *cuda_sources.geometry(xh.shape, out_hw, kernel, stride, padding, dilation), 1, y, mask)
    np.testing.assert_array_equal(y.transpose(0, 3, 1, 2), y_ref)
    np.testing.assert_array_equal(mask, mask_ref)


@pytest.mark.parametrize("kernel,stride,padding,dilation,hw", GEOMETRIES)
def test_max_pool_scatter_kernel_matches_numpy(kernels, kernel, stride, padding, dilation, hw):
    rng = np.random.default_rng(1)
    x, out_hw = _tied_image(rng, hw), _out_hw(kernel, stride, padding, dilation, hw)
    _, mask = NP.max_pool2d_with_mask(x, kernel, stride, padding, dilation, out_hw)
    gy = rng.standard_normal((2, 3) + out_hw).astype(np.float32)
    gx_ref = NP.max_pool2d_scatter(gy, mask, x.shape, kernel, stride, padding, dilation)
    gyh = np.ascontiguousarray(gy.transpose(0, 2, 3, 1))
    gx = np.full((2,) + hw + (3,), np.nan, dtype=np.float32)
    _run(kernels, cuda_sources.MAX_POOL2D_SCATTER, gx.size, gyh, np.ascontiguousarray(mask),
         *cuda_sources.geometry(gx.shape, out_hw, kernel, stride, padding, dilation), gyh.size, gx)
    np.testing.assert_array_equal(gx.transpose(0, 3, 1, 2), gx_ref)


@pytest.mark.parametrize("kernel,stride,padding,dilation,hw", GEOMETRIES)
def test_col2im_kernel_matches_numpy(kernels, kernel, stride, padding, dilation, hw):
    rng = np.random.default_rng(2)
    out_hw = _out_hw(kernel, stride, padding, dilation, hw)
    cols = rng.standard_normal((2,) + out_hw + kernel + (3,)).astype(np.float32)
    ref = NP.col2im(cols, (2, 3) + hw, stride, padding, dilation)
    x = np.full((2,) + hw + (3,), np.nan, dtype=np.float32)
    window = cuda_sources.geometry(x.shape, out_hw, kernel, stride, padding, dilation)
    _run(kernels, cuda_sources.COL2IM, x.size, cols, *window, x)
    np.testing.assert_array_equal(x.transpose(0, 3, 1, 2), ref)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_one_hot_kernel_matches_numpy_and_flags_bad_classes(kernels, smoothing):
    target = np.array([[0, 3], [2, 1]], dtype=np.int64)
    off = smoothing / 4
    ref = NP.one_hot("cross_entropy", target, 4, 1 - smoothing + off, off, np.float32)
    q, bad = np.full((2, 2, 4), np.nan, dtype=np.float32), np.zeros(1, dtype=np.int32)
    _run(kernels, cuda_sources.ONE_HOT, q.size, target, 4, 1 - smoothing + off, off, q, bad)
    np.testing.assert_array_equal(q, ref)
    assert bad[0] == 0
    for wrong in (-1, 4):
        target[1, 0] = wrong
        _run(kernels, cuda_sources.ONE_HOT, q.size, target, 4, 1 - smoothing + off, off, q, bad)
        assert bad[0] == 1
        bad[0] = 0


def _state(rng, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def test_optimizer_kernels_match_numpy(kernels):
    rng = np.random.default_rng(3)
    g, p, v = _state(rng, 5, 7), _state(rng, 5, 7), np.abs(_state(rng, 5, 7))
    p_ref, v_ref = p.copy(), v.copy()
    NP.rmsprop_update(p_ref, g, v_ref, None, 0.01, 0.9, 1e-7, 0.0)
    _run(kernels, cuda_sources.RMSPROP, p.size, g, 0.01, 0.9, 1 - 0.9, 1e-7, p, v)
    np.testing.assert_allclose(v, v_ref, rtol=1e-6)
    np.testing.assert_allclose(p, p_ref, rtol=1e-6)

    m, v = _state(rng, 5, 7), np.abs(_state(rng, 5, 7))
    p_ref, m_ref, v_ref = p.copy(), m.copy(), v.copy()
    step_size, bias2_sqrt = 1e-3 / (1 - 0.9 ** 3), np.sqrt(1 - 0.999 ** 3)
    NP.adam_update(p_ref, g, m_ref, v_ref, (0.9, 0.999), step_size, bias2_sqrt, 1e-8)
    _run(kernels, cuda_sources.ADAM, p.size, g, 0.9, 1 - 0.9, 0.999, 1 - 0.999, step_size, bias2_sqrt, 1e-8, p, m, v)
    for ours, ref in ((m, m_ref), (v, v_ref), (p, p_ref)):
        np.testing.assert_allclose(ours, ref, rtol=1e-6)

    for nesterov in (False, True):
        buf = _state(rng, 5, 7)
        p_ref, buf_ref = p.copy(), buf.copy()
        NP.sgd_momentum_update(p_ref, g, buf_ref, 0.1, 0.9, 0.1, nesterov)
        _run(kernels, cuda_sources.SGD_MOMENTUM, p.size, g, 0.1, 0.9, 1 - 0.1, int(nesterov), p, buf)
        np.testing.assert_allclose(buf, buf_ref, rtol=1e-6)
        np.testing.assert_allclose(p, p_ref, rtol=1e-6)


@pytest.mark.parametrize("q_sums_to_one", [True, False])
def test_softmax_cross_entropy_kernels_match_numpy(kernels, q_sums_to_one):
    rng = np.random.default_rng(4)
    z = (rng.standard_normal((6, 5)) * 4).astype(np.float32)
    z[2, 1] = 80.0  # exp would overflow without the row's maximum taken out
    q = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 6)] if q_sums_to_one else rng.uniform(0, 1, (6, 5)).astype(
        np.float32)
    g = rng.standard_normal(6).astype(np.float32)
    loss = np.full(6, np.nan, dtype=np.float32)
    _run(kernels, cuda_sources.SOFTMAX_CROSS_ENTROPY, loss.size, z, q, 5, loss)
    np.testing.assert_allclose(loss, NP.softmax_cross_entropy(z, q), rtol=1e-5, atol=1e-6)
    gz = np.full((6, 5), np.nan, dtype=np.float32)
    _run(kernels, cuda_sources.SOFTMAX_CROSS_ENTROPY_GRAD, gz.size, z, q, g, 5, int(q_sums_to_one), gz)
    np.testing.assert_allclose(gz, NP.softmax_cross_entropy_grad(z, q, g, q_sums_to_one), rtol=1e-5, atol=1e-6)


def test_relu_with_mask_kernel_matches_numpy(kernels):
    x = np.array([-2.0, -0.0, 0.0, 1.5, np.nan, np.inf, -np.inf], dtype=np.float32)
    y, positive = np.full_like(x, 7.0), np.zeros(x.shape, dtype=bool)
    _run(kernels, cuda_sources.RELU_WITH_MASK, x.size, x, y, positive)
    y_ref, positive_ref = NP.relu_with_mask(x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(positive, positive_ref)


def test_relu_grad_kernel_matches_numpy(kernels):
    gy = np.array([1.0, -2.0, np.nan, np.nan, 3.0], dtype=np.float32)
    positive = np.array([True, False, True, False, False])
    gx = np.full_like(gy, 7.0)
    _run(kernels, cuda_sources.RELU_GRAD, gy.size, gy, positive, gx)
    np.testing.assert_array_equal(gx, NP.relu_grad(gy, positive))


@pytest.mark.parametrize("kernel,stride,padding,dilation,hw", GEOMETRIES)
def test_im2col_kernel_matches_numpy(kernels, kernel, stride, padding, dilation, hw):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3) + hw).astype(np.float32)
    out_hw = _out_hw(kernel, stride, padding, dilation, hw)
    ref = NP.im2col_rows(x, kernel, stride, padding, dilation, out_hw)
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    cols = np.full(ref.shape, np.nan, dtype=np.float32)
    window = cuda_sources.geometry(xh.shape, out_hw, kernel, stride, padding, dilation)
    _run(kernels, cuda_sources.IM2COL, cols.size, xh, *window, cols)
    np.testing.assert_array_equal(cols, ref)
