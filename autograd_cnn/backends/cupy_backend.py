"""The CuPy (GPU) backend. Imported only when asked for, so CuPy stays optional."""
from __future__ import annotations

import os
from typing import Any

from ..errors import BackendError, ShapeError
from . import cuda_sources
from .indexing import class_range_message
from .xp_backend import XpBackend

#: Set to 0 to run the generic ``xp`` kernels instead of the fused CUDA ones (to compare them).
FUSED_ENV_VAR = "AUTOGRAD_CNN_FUSED_KERNELS"

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

# Under an MPI launcher the processes of one machine share its GPUs: each takes its own (local
# rank modulo the count) before it allocates anything; see autograd_cnn.distributed.
LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")
_local_rank = next((int(os.environ[v]) for v in LOCAL_RANK_VARIABLES if os.environ.get(v, "").strip().isdigit()), None)
if _local_rank is not None:
    cupy.cuda.Device(_local_rank % _gpu_count).use()


class CupyBackend(XpBackend):
    """CuPy arrays on a GPU: the generic kernels, some fused into one CUDA launch each."""

    name = "cupy"
    xp = cupy
    # Fewer, larger kernels: for conv2d's input gradient one GEMM and col2im beat a product
    # and an add per kernel offset on an H100 (BENCHMARKS.md, GPU section).
    launch_bound = True

    def __init__(self) -> None:
        super().__init__()
        self._scalars: dict = {}
        self.fused_kernels = os.environ.get(FUSED_ENV_VAR, "1").strip() != "0"
        self._kernels: dict = {}
        self._ones_cache: dict = {}
        self._error_flag: Any = None  # a device int32, set by a kernel that found a bad input
        self._pending_checks: list = []  # (op, classes, target) read since the flag was last read

    def is_array(self, obj: Any) -> bool:
        return isinstance(obj, cupy.ndarray)

    @staticmethod
    def _kept(cache: dict, key: Any, make: Any, limit: int) -> Any:
        """cache[key], made by make() the first time; the cache starts over past ``limit`` entries."""
        array = cache.get(key)
        if array is None:
            if len(cache) > limit:
                cache.clear()
            array = cache[key] = make()
        return array

    def scalar(self, value: bool | int | float, dtype: Any = None) -> Any:
        # Each new 0-d device array is a host -> GPU copy; a Python number in the training
        # loop (x * 0.5, 1 - p) would pay it every step, so keep the few that recur.
        key = (type(value), value, None if dtype is None else str(dtype))
        return self._kept(self._scalars, key, lambda: cupy.asarray(value, dtype=dtype), 1024)

    def to_host(self, array: Any) -> Any:
        self.raise_pending_errors()
        return cupy.asnumpy(array)

    def from_host(self, array: Any) -> Any:
        return cupy.asarray(array)

    def synchronize(self) -> None:
        cupy.cuda.get_current_stream().synchronize()
        self.raise_pending_errors()

    # --- errors found on the device ------------------------------------------
    def raise_pending_errors(self) -> None:
        """Report a bad input a kernel found since the last host read (one flag read covers all)."""
        if not self._pending_checks:
            return
        pending, self._pending_checks = self._pending_checks, []
        if not int(self._error_flag[0]):
            return
        self._error_flag.fill(0)
        for op, classes, target in pending:
            low, high = int(target.min()), int(target.max())
            if low < 0 or high >= classes:
                raise ShapeError(class_range_message(op, classes, low, high)
                                 + " (found on the GPU and reported at this read of a value)")
        op, classes, _ = pending[-1]  # the targets were changed in place since: no values to show
        raise ShapeError(f"{op}: a class index outside [0, {classes - 1}] was found on the GPU "
                         "(reported at this read of a value; the targets have changed since)")

    def _flag_for(self, op: str, classes: int, target: Any) -> Any:
        if self._error_flag is None:
            self._error_flag = cupy.zeros(1, dtype=cupy.int32)
        if len(self._pending_checks) >= 64:  # keep the list short: read the flag now and then
            self.raise_pending_errors()
        self._pending_checks.append((op, classes, target))
        return self._error_flag

    # --- fused kernels ----------------------------------------------------------
    # The kernels index raw arguments by hand with a flat index in C order (CuPy maps it to
    # the array's own strides); C-contiguous arrays make that a plain offset.
    def _kernel(self, source: cuda_sources.KernelSource) -> Any:
        kernel = self._kernels.get(source.name)
        if kernel is None:  # CuPy compiles it on the first call (and caches it on disk)
            kernel = self._kernels[source.name] = cupy.ElementwiseKernel(
                source.in_params, source.out_params, source.operation, source.name)
        return kernel

    def _fuses(self, *arrays: Any) -> bool:
        """Whether the fused kernels apply: they are on, and the arrays are float32 or float64."""
        return self.fused_kernels and all(_fusable(a.dtype) for a in arrays)

    def im2col_rows(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                    out_hw: tuple) -> Any:
        if not self._fuses(x):
            return super().im2col_rows(x, kernel_size, stride, padding, dilation, out_hw)
        n, c = x.shape[0], x.shape[1]
        cols = cupy.empty((n * out_hw[0] * out_hw[1], kernel_size[0] * kernel_size[1] * c), dtype=x.dtype)
        xh = x.transpose(0, 2, 3, 1)  # read in place, padding included: no padded copy
        geometry = cuda_sources.geometry(xh.shape, out_hw, kernel_size, stride, padding, dilation)
        self._kernel(cuda_sources.IM2COL)(xh, *geometry, cols)
        return cols

    def col2im(self, cols: Any, in_shape: tuple, stride: tuple, padding: tuple, dilation: tuple) -> Any:
        if not (self._fuses(cols) and cols.flags.c_contiguous):
            return super().col2im(cols, in_shape, stride, padding, dilation)
        n, oh, ow, kh, kw, c = cols.shape
        x = cupy.empty((n, in_shape[2], in_shape[3], c), dtype=cols.dtype)
        geometry = cuda_sources.geometry(x.shape, (oh, ow), (kh, kw), stride, padding, dilation)
        self._kernel(cuda_sources.COL2IM)(cols, *geometry, x)
        return x.transpose(0, 3, 1, 2)

    def _max_pool(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                  out_hw: tuple, want_mask: bool) -> tuple:
        xh = cupy.ascontiguousarray(x.transpose(0, 2, 3, 1))
        n, _, _, c = xh.shape
        y = cupy.empty((n, out_hw[0], out_hw[1], c), dtype=x.dtype)
        size = kernel_size[0] * kernel_size[1]
        mask = cupy.empty((size,) + y.shape if want_mask else (1,), dtype=bool)
        geometry = cuda_sources.geometry(xh.shape, out_hw, kernel_size, stride, padding, dilation)
        self._kernel(cuda_sources.MAX_POOL2D)(xh, *geometry, int(want_mask), y, mask)
        return y.transpose(0, 3, 1, 2), mask

    def max_pool2d(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                   out_hw: tuple) -> Any:
        if not self._fuses(x):
            return super().max_pool2d(x, kernel_size, stride, padding, dilation, out_hw)
        return self._max_pool(x, kernel_size, stride, padding, dilation, out_hw, want_mask=False)[0]

    def max_pool2d_with_mask(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                             out_hw: tuple) -> tuple:
        if not self._fuses(x):
            return super().max_pool2d_with_mask(x, kernel_size, stride, padding, dilation, out_hw)
        return self._max_pool(x, kernel_size, stride, padding, dilation, out_hw, want_mask=True)

    def max_pool2d_scatter(self, gy: Any, mask: Any, in_shape: tuple, kernel_size: tuple, stride: tuple,
                           padding: tuple, dilation: tuple) -> Any:
        if not self._fuses(gy):
            return super().max_pool2d_scatter(gy, mask, in_shape, kernel_size, stride, padding, dilation)
        gyh = cupy.ascontiguousarray(gy.transpose(0, 2, 3, 1))
        gx = cupy.empty((in_shape[0], in_shape[2], in_shape[3], in_shape[1]), dtype=gy.dtype)
        geometry = cuda_sources.geometry(gx.shape, gyh.shape[1:3], kernel_size, stride, padding, dilation)
        self._kernel(cuda_sources.MAX_POOL2D_SCATTER)(gyh, cupy.ascontiguousarray(mask), *geometry, gyh.size, gx)
        return gx.transpose(0, 3, 1, 2)

    def one_hot(self, op: str, target: Any, classes: int, on: float, off: float, dtype: Any) -> Any:
        if not (self.fused_kernels and _fusable(cupy.dtype(dtype)) and target.dtype.kind in "iub"):
            return super().one_hot(op, target, classes, on, off, dtype)
        q = cupy.empty(target.shape + (classes,), dtype=dtype)
        if q.size:  # the flag and the check list are for kernels that ran
            target = cupy.ascontiguousarray(target)
            self._kernel(cuda_sources.ONE_HOT)(target, classes, on, off, q, self._flag_for(op, classes, target))
        return q

    def relu_with_mask(self, x: Any) -> tuple:
        if not self._fuses(x):
            return super().relu_with_mask(x)
        # empty_like keeps x's memory layout: a conv's channels-last output stays channels-last.
        y, positive = cupy.empty_like(x), cupy.empty_like(x, dtype=bool)
        self._kernel(cuda_sources.RELU_WITH_MASK)(x, y, positive)
        return y, positive

    def relu_grad(self, gy: Any, positive: Any) -> Any:
        if not (self._fuses(gy) and gy.shape == positive.shape):
            return super().relu_grad(gy, positive)
        gx = cupy.empty_like(positive, dtype=gy.dtype)  # channels-last when ReLU's input was
        self._kernel(cuda_sources.RELU_GRAD)(gy, positive, gx)
        return gx

    def softmax_cross_entropy(self, z: Any, q: Any) -> Any:
        if not (self._fuses(z, q) and z.size):
            return super().softmax_cross_entropy(z, q)
        loss = cupy.empty(z.shape[:-1], dtype=z.dtype)
        self._kernel(cuda_sources.SOFTMAX_CROSS_ENTROPY)(
            cupy.ascontiguousarray(z), cupy.ascontiguousarray(q), z.shape[-1], loss)
        return loss

    def softmax_cross_entropy_grad(self, z: Any, q: Any, g: Any, q_sums_to_one: bool) -> Any:
        if not (self._fuses(z, q, g) and z.size):
            return super().softmax_cross_entropy_grad(z, q, g, q_sums_to_one)
        gz = cupy.empty(z.shape, dtype=z.dtype)
        self._kernel(cuda_sources.SOFTMAX_CROSS_ENTROPY_GRAD)(
            cupy.ascontiguousarray(z), cupy.ascontiguousarray(q), cupy.ascontiguousarray(g), z.shape[-1],
            int(q_sums_to_one), gz)
        return gz

    def channel_sum(self, x: Any) -> Any:
        if self._fuses(x) and x.ndim == 4 and x.strides[1] != x.itemsize:
            return x.sum(axis=(0, 2, 3))  # one reduction kernel; einsum takes several launches here
        return super().channel_sum(x)  # with the kept ones vector below

    def ones_vector(self, length: int, dtype: Any) -> Any:
        """A vector of ones, kept: a product with it sums rows, and making it is two launches."""
        return self._kept(self._ones_cache, (length, str(dtype)), lambda: cupy.ones(length, dtype=dtype), 16)

    def rmsprop_update(self, p: Any, g: Any, square_avg: Any, buf: Any, lr: float, alpha: float,
                       eps: float, momentum: float) -> None:
        if buf is not None or not self._fuses(p, g):
            return super().rmsprop_update(p, g, square_avg, buf, lr, alpha, eps, momentum)
        self._kernel(cuda_sources.RMSPROP)(g, lr, alpha, 1 - alpha, eps, p, square_avg)

    def adam_update(self, p: Any, g: Any, exp_avg: Any, exp_avg_sq: Any, betas: tuple, step_size: float,
                    bias2_sqrt: float, eps: float) -> None:
        if not self._fuses(p, g):
            return super().adam_update(p, g, exp_avg, exp_avg_sq, betas, step_size, bias2_sqrt, eps)
        b1, b2 = betas
        self._kernel(cuda_sources.ADAM)(g, b1, 1 - b1, b2, 1 - b2, step_size, bias2_sqrt, eps, p, exp_avg, exp_avg_sq)

    def sgd_momentum_update(self, p: Any, g: Any, buf: Any, lr: float, momentum: float, dampening: float,
                            nesterov: bool) -> None:
        if not self._fuses(p, g):
            return super().sgd_momentum_update(p, g, buf, lr, momentum, dampening, nesterov)
        self._kernel(cuda_sources.SGD_MOMENTUM)(g, lr, momentum, 1 - dampening, int(nesterov), p, buf)

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
                "device": name.decode() if isinstance(name, bytes) else str(name),
                "fused_kernels": "on" if self.fused_kernels else "off"}


def _fusable(dtype: Any) -> bool:
    """The fused kernels are compiled for float32 and float64 (CuPy binds T to either)."""
    return dtype.kind == "f" and dtype.itemsize >= 4
