"""DLPack and np.asarray: one memory seen from both sides (NumPy, PyTorch and CuPy where installed),
dtype, shape and strides kept, 0-d and strided tensors; the errors for what cannot be shared."""
from __future__ import annotations

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn.backends import cupy_usable


@pytest.fixture(autouse=True)
def _host_tensors():
    """NumPy's side of an exchange needs host tensors whatever AUTOGRAD_CNN_BACKEND says; the tests
    that take the ``backend`` fixture choose their own inside this."""
    with ag.use_backend("numpy"):
        yield


def real_cupy():
    """CuPy itself with a GPU (not the NumPy stand-in that tests/cupy_standin puts in its place)."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    if getattr(cupy, "__version__", "") == "stand-in" or not cupy_usable()[0]:
        pytest.skip("needs CuPy and a GPU (the stand-in's arrays are NumPy's)")
    return cupy


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "uint8"])
def test_numpy_reads_a_tensor_in_place(dtype):
    t = ag.tensor(np.arange(12).reshape(3, 4).astype(dtype))
    a = np.from_dlpack(t)
    assert a.dtype == t.dtype and a.shape == t.shape and np.shares_memory(a, t.data)
    a[1, 2] = 99  # written through NumPy, read through the tensor
    assert t.numpy()[1, 2] == 99


def test_a_tensor_reads_a_numpy_array_in_place():
    a = np.linspace(0, 1, 6, dtype=np.float64).reshape(2, 3)
    t = ag.from_dlpack(a)
    assert t.backend == "numpy" and t.dtype == np.float64 and t.shape == (2, 3) and np.shares_memory(t.data, a)
    t.data[0, 0] = -5.0
    assert a[0, 0] == -5.0
    assert ag.from_dlpack(t).data is t.data  # a tensor shares too


def test_strided_and_zero_d_tensors_keep_their_layout():
    base = ag.tensor(np.arange(24, dtype=np.float32).reshape(4, 6))
    for view in (base.T, base[:, ::2], base[1:3, 1:]):  # transposed, stepped, offset
        a = np.from_dlpack(view)
        assert a.strides == view.data.strides and np.shares_memory(a, base.data)
        np.testing.assert_array_equal(a, view.numpy())
    scalar = ag.tensor(3.5)
    a = np.from_dlpack(scalar)
    assert a.shape == () and a.dtype == np.float32 and np.shares_memory(a, scalar.data)
    total = ag.tensor([[1.0, 2.0], [3.0, 4.0]]).sum()  # a full reduction: a 0-d result
    assert np.from_dlpack(total) == 10.0 and np.asarray(total).shape == ()
    back = ag.from_dlpack(np.array(2.0))
    assert back.shape == () and back.item() == 2.0


def test_np_asarray_shares_a_numpy_tensor_and_refuses_a_gpu_one(backend):
    t = ag.tensor(np.ones((2, 3), dtype=np.float32))
    if backend == "cupy":  # the values live on the GPU: the error says how to copy them on purpose
        with pytest.raises(ag.BackendError, match=r"\.numpy\(\)"):
            np.asarray(t)
        return
    a = np.asarray(t)
    assert a is t.data  # no copy
    a[0, 0] = 7
    assert t.numpy()[0, 0] == 7
    assert np.asarray(t, dtype=np.float64).dtype == np.float64 and t.dtype == np.float32
    copied = np.array(t, copy=True)
    copied[0, 1] = 5
    assert t.numpy()[0, 1] == 1
    with pytest.raises(ValueError, match="needs a copy"):
        np.asarray(t, dtype=np.float64, copy=False)


def test_the_dlpack_device_says_where_the_memory_is(backend):
    t = ag.zeros(3)
    assert t.__dlpack_device__() == t.data.__dlpack_device__()
    if backend == "numpy":
        assert t.__dlpack_device__() == (1, 0)


def test_from_dlpack_names_what_it_cannot_take():
    with pytest.raises(TypeError, match="list does not speak DLPack"):
        ag.from_dlpack([1.0, 2.0])

    class OnAnotherGPU:
        def __dlpack__(self, **kwargs):
            raise AssertionError("never asked for its memory")

        def __dlpack_device__(self):
            return (10, 0)

    with pytest.raises(ag.BackendError, match="ROCm"):
        ag.from_dlpack(OnAnotherGPU())


def test_pytorch_shares_memory_both_ways():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the cross-check needs it")
    t = ag.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    tt = torch.from_dlpack(t)
    assert tt.dtype == torch.float32 and tuple(tt.shape) == (2, 3)
    tt[0, 1] = 42.0
    assert t.numpy()[0, 1] == 42.0
    source = torch.arange(12, dtype=torch.float64).reshape(3, 4).T  # strided
    back = ag.from_dlpack(source)
    assert back.dtype == np.float64 and back.shape == (4, 3)
    assert back.data.strides == tuple(s * 8 for s in source.stride())
    source[0, 0] = -1.0
    assert back.numpy()[0, 0] == -1.0
    assert ag.from_dlpack(torch.tensor(2.5)).shape == () and torch.from_dlpack(ag.tensor(1.5)).item() == 1.5
    assert ag.from_dlpack(torch.arange(3)).dtype == np.int64


def test_cupy_shares_gpu_memory_both_ways():
    cupy = real_cupy()
    with ag.use_backend("cupy"):
        t = ag.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    c = cupy.from_dlpack(t)
    c[1, 1] = 50
    assert t.numpy()[1, 1] == 50 and t.__dlpack_device__()[0] == 2
    back = ag.from_dlpack(cupy.arange(4, dtype=cupy.float64)[::2])
    assert back.backend == "cupy" and back.data.strides == (16,)
    with pytest.raises(ag.BackendError, match=r"\.numpy\(\)"):
        np.asarray(t)
