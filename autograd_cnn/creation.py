"""Making tensors: ``ag.tensor`` from data, ``from_numpy``, ``from_dlpack``, and the factories
(``zeros``, ``ones``, their ``_like`` forms, ``randn``, ``rand``, ``arange``). Every array goes
through ``tensor.py``'s one conversion path (``numeric_dtype``, ``cast``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import checks
from .backends import Backend, backend_of, get_backend
from .errors import ArgumentTypeError, BackendError
from .random import backend_rng
from .tensor import Tensor, cast, check_can_require_grad, check_numbers, numeric_dtype, shape_arg

_DLPACK_HOST, _DLPACK_CUDA = 1, 2  # DLPack's device types


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None,
           backend: str | Backend | None = None, name: str | None = None) -> Tensor:
    """A new leaf tensor from a number, a list, a NumPy or CuPy array, or a tensor.

    Python floats and lists of them become float32; arrays keep their dtype; integer
    data stays integer (labels). ``dtype=`` overrides; ``backend=`` places it, else host
    data (lists, numbers, NumPy arrays) goes to the default backend and a CuPy array stays.
    Only numbers are taken (never text or Python objects), and a conversion that would change
    a value beyond rounding (a finite number made Inf, NaN or 300 made an int8) is refused.
    """
    checks.flag("tensor()", "requires_grad", requires_grad)
    dtype = numeric_dtype("tensor()", dtype)
    if isinstance(data, Tensor):
        data = data.data
    target = get_backend(backend) if backend is not None else None
    is_array = hasattr(data, "dtype") and hasattr(data, "shape")
    if is_array:
        source = backend_of(data) if not isinstance(data, np.generic) else get_backend("numpy")
        check_numbers("tensor()", data.dtype, f"an array of {data.dtype}")
        if target is None:
            # Host data goes to the default backend, as lists do; a GPU array stays on the GPU.
            target = get_backend() if source.name == "numpy" else source
        array = data if source is target else target.from_host(source.to_host(data))
        array = cast("tensor()", target.xp, array, dtype, copy=True)
    else:
        target = target or get_backend()
        try:
            host = np.asarray(data)
        except (ValueError, TypeError):
            host = None  # ragged nested lists
        if host is None:
            raise ArgumentTypeError(f"tensor(): cannot make a tensor from {type(data).__name__} data; pass "
                                    "numbers, nested lists of equal length, or an array")
        check_numbers("tensor()", host.dtype, f"{type(data).__name__} data")
        if dtype is None and host.dtype == np.float64:
            dtype = np.dtype(np.float32)  # Python floats become float32, as torch.tensor
        array = target.from_host(cast("tensor()", np, host, dtype))
    if requires_grad:
        check_can_require_grad("tensor()", array.dtype)
    return Tensor(array, target, requires_grad=requires_grad, name=name)


# DLPack's device types: where the array's memory is (the standard's DLDeviceType numbers).


_DLPACK_DEVICES = {1: "CPU", 2: "CUDA", 3: "CUDA host", 4: "OpenCL", 7: "Vulkan", 8: "Metal", 10: "ROCm",
                   13: "CUDA managed", 14: "oneAPI"}


def from_dlpack(obj: Any) -> Tensor:
    """A tensor that shares memory with ``obj``, any array that speaks DLPack (NumPy, CuPy,
    PyTorch, JAX): host memory gives a NumPy-backend tensor, GPU memory a CuPy-backend one.
    Nothing is copied, so a write through one is seen through the other."""
    if isinstance(obj, Tensor):
        return Tensor(obj.data, obj.backend_object)
    if not hasattr(obj, "__dlpack__") or not hasattr(obj, "__dlpack_device__"):
        raise ArgumentTypeError(f"from_dlpack: a {type(obj).__name__} does not speak DLPack (it has no __dlpack__ and "
                        "__dlpack_device__); pass the array itself, e.g. a torch.Tensor, not a capsule")
    device, index = obj.__dlpack_device__()
    if device == _DLPACK_HOST:
        backend = get_backend("numpy")
    elif device == _DLPACK_CUDA:
        backend = get_backend("cupy")  # says what to install where CuPy or the GPU is missing
    else:
        kind = _DLPACK_DEVICES.get(int(device), f"device type {int(device)}")
        raise BackendError(f"from_dlpack: the array lives on {kind} (device {index}); autograd_cnn holds "
                           "host (NumPy) and CUDA (CuPy) memory only. Move it to the CPU or a CUDA GPU first")
    return Tensor(backend.xp.from_dlpack(obj), backend)


def from_numpy(array: Any, requires_grad: bool = False) -> Tensor:
    """A tensor on the default backend from a NumPy array (its dtype kept)."""
    return tensor(array, requires_grad=requires_grad)


def _make(fill: str, shape: tuple, dtype: Any, requires_grad: bool, backend: Any) -> Tensor:
    shape = shape_arg(shape)
    b = get_backend(backend)
    array = getattr(b.xp, fill)(shape, dtype=dtype or "float32")
    if requires_grad:
        check_can_require_grad(f"{fill}()", array.dtype)
    return Tensor(array, b, requires_grad=requires_grad)


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False, backend: Any = None) -> Tensor:
    return _make("zeros", shape, dtype, requires_grad, backend)


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False, backend: Any = None) -> Tensor:
    return _make("ones", shape, dtype, requires_grad, backend)


def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros of t's shape, backend and memory layout (a channels-last image stays channels-last)."""
    return Tensor(t.backend_object.xp.zeros_like(t.data, dtype=dtype or t.dtype), t.backend_object,
                  requires_grad=requires_grad)


def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones of t's shape, backend and memory layout (a channels-last image stays channels-last)."""
    return Tensor(t.backend_object.xp.ones_like(t.data, dtype=dtype or t.dtype), t.backend_object,
                  requires_grad=requires_grad)


def randn(*shape: Any, dtype: Any = None, requires_grad: bool = False, backend: Any = None) -> Tensor:
    """Standard normal samples from the backend's seeded generator."""
    shape = shape_arg(shape)
    b = get_backend(backend)
    array = backend_rng(b).standard_normal(shape, dtype=dtype or "float32")
    return Tensor(array, b, requires_grad=requires_grad)


def rand(*shape: Any, dtype: Any = None, requires_grad: bool = False, backend: Any = None) -> Tensor:
    """Uniform samples in [0, 1) from the backend's seeded generator."""
    shape = shape_arg(shape)
    b = get_backend(backend)
    array = backend_rng(b).random(shape, dtype=dtype or "float32")
    return Tensor(array, b, requires_grad=requires_grad)


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: Any = None, backend: Any = None) -> Tensor:
    """Evenly spaced values in [start, stop): integers stay int64, float steps give float32."""
    b = get_backend(backend)
    if stop is None:
        start, stop = 0, start
    array = b.xp.arange(start, stop, step, dtype=dtype)
    if dtype is None and array.dtype.kind == "f":
        array = array.astype("float32")  # as Python floats elsewhere (torch.arange does the same)
    return Tensor(array, b)


# --------------------------------------------------------------------------- op inputs
# How a Python number, a list or an array becomes an op's input (Function.apply calls this for
# any input that is not a Tensor; a wrapper that reads an input's shape first calls as_tensor).
