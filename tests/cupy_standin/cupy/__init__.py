"""A stand-in for CuPy on the CPU, for tests only: NumPy's API, and ElementwiseKernel runs the
CUDA bodies of ``autograd_cnn/backends/cuda_sources.py`` compiled as C++ (one loop over ``i``).

It lets the test suite run the CuPy backend's own Python code (its fused-kernel paths, their
arguments and memory layouts) on a machine without a GPU. It is not CuPy: arrays are NumPy
arrays, so tests that tell NumPy and CuPy arrays apart cannot pass on it.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import tempfile
import types

import numpy as _np

from autograd_cnn.backends import cuda_sources

globals().update({name: getattr(_np, name) for name in dir(_np) if not name.startswith("__")})
__version__ = "stand-in"

cuda = types.SimpleNamespace(
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, runtimeGetVersion=lambda: 0,
                                  getDeviceProperties=lambda index: {"name": b"CPU stand-in"}),
    get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None),
    Device=lambda: types.SimpleNamespace(id=0))


def asnumpy(array: _np.ndarray) -> _np.ndarray:
    return _np.asarray(array)


def _build() -> dict:
    """The kernels as C functions, once with T = float and once with T = double."""
    import test_cuda_sources as harness  # the C++ translation the kernel tests use

    folder = os.environ.get("AUTOGRAD_CNN_STANDIN_BUILD") or tempfile.mkdtemp()
    libraries = {}
    for element in ("float", "double"):
        code = harness.PRELUDE.replace("typedef float T;", f"typedef {element} T;")
        code += "\n".join(harness.c_function(source) for source in cuda_sources.ALL)
        path = os.path.join(folder, f"kernels_{element}")
        with open(path + ".cpp", "w") as f:
            f.write(code)
        subprocess.run([harness.COMPILER, "-O1", "-shared", "-fPIC", "-o", path + ".so", path + ".cpp"],
                       check=True)
        libraries[element] = ctypes.CDLL(path + ".so")
    return libraries


_LIBRARIES = _build()
_SOURCES = {source.name: source for source in cuda_sources.ALL}


class ElementwiseKernel:
    """Runs one kernel body over the elements of its first non-raw output, as CuPy would."""

    def __init__(self, in_params: str, out_params: str, operation: str, name: str) -> None:
        self.source = _SOURCES[name]
        assert (in_params, out_params, operation) == (self.source.in_params, self.source.out_params,
                                                      self.source.operation)

    def __call__(self, *args: object) -> None:
        import test_cuda_sources as harness

        params = harness.kernel_params(self.source)
        assert len(args) == len(params), f"{self.source.name}: {len(args)} arguments for {len(params)}"
        outputs_from = len(self.source.in_params.split(","))
        t_arrays = [a for (_, ctype, is_array, _), a in zip(params, args) if is_array and ctype == "T"]
        double = t_arrays[0].dtype == _np.float64
        assert all(a.dtype == t_arrays[0].dtype for a in t_arrays), "T binds one dtype"
        size, c_args, write_back, keep = None, [], [], []
        for k, ((_, ctype, is_array, raw), value) in enumerate(zip(params, args)):
            if not is_array:
                scalar = {"T": ctypes.c_double if double else ctypes.c_float, "int": ctypes.c_int,
                          "long long": ctypes.c_longlong}[ctype]
                c_args.append(scalar(value))
                continue
            flat = _np.ascontiguousarray(value)  # CuPy maps a flat index to any strides
            keep.append(flat)  # a copy must outlive the call that reads it
            if flat is not value and k >= outputs_from:
                write_back.append((value, flat))
            if not raw:
                size = flat.size if size is None else size
            c_args.append(ctypes.c_void_p(flat.ctypes.data))
        library = _LIBRARIES["double" if double else "float"]
        getattr(library, self.source.name)(ctypes.c_ssize_t(size), *c_args)
        for value, flat in write_back:
            value[...] = flat
