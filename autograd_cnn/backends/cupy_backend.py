"""The CuPy (GPU) backend. Imported only when asked for, so CuPy stays optional."""
from __future__ import annotations

from typing import Any

from ..errors import BackendError
from .base import Backend

try:
    import cupy
except ImportError as _err:  # the registry turns this into a message naming the variable
    raise BackendError(
        f"CuPy is not installed ({_err}). Install it with: pip install 'autograd-cnn[gpu]' "
        "(or a cupy-cudaXXx wheel matching your CUDA), or use the numpy backend.") from None

try:
    _gpu_count = cupy.cuda.runtime.getDeviceCount()
except Exception as _err:  # CUDA driver missing or broken: CuPy imports but cannot run
    raise BackendError(
        f"CuPy is installed but no GPU is visible ({_err}). Check the NVIDIA driver and "
        "CUDA_VISIBLE_DEVICES, or use the numpy backend.") from None
if _gpu_count == 0:
    raise BackendError("CuPy is installed but no GPU is visible; use the numpy backend.")


class CupyBackend(Backend):
    name = "cupy"
    xp = cupy
    # Fewer, larger kernels: for conv2d's input gradient one GEMM and col2im beat a product
    # and an add per kernel offset on an H100 (BENCHMARKS.md, GPU section).
    launch_bound = True

    def __init__(self) -> None:
        super().__init__()
        self._scalars: dict = {}

    def is_array(self, obj: Any) -> bool:
        return isinstance(obj, cupy.ndarray)

    def scalar(self, value: bool | int | float, dtype: Any = None) -> Any:
        # Each new 0-d device array is a host -> GPU copy; a Python number in the training
        # loop (x * 0.5, 1 - p) would pay it every step, so keep the few that recur.
        key = (type(value), value, None if dtype is None else str(dtype))
        array = self._scalars.get(key)
        if array is None:
            if len(self._scalars) > 1024:
                self._scalars.clear()
            array = self._scalars[key] = cupy.asarray(value, dtype=dtype)
        return array

    def to_host(self, array: Any) -> Any:
        return cupy.asnumpy(array)

    def from_host(self, array: Any) -> Any:
        return cupy.asarray(array)

    def synchronize(self) -> None:
        cupy.cuda.get_current_stream().synchronize()

    def scatter_add(self, out: Any, index: Any, values: Any) -> None:
        import cupyx

        cupyx.scatter_add(out, index, values)

    def erf(self, x: Any) -> Any:
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(x)

    def describe(self) -> dict:
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        return {"backend": self.name, "cupy": cupy.__version__,
                "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
                "device": name.decode() if isinstance(name, bytes) else str(name)}
