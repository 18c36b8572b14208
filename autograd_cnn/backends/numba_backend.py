"""The Numba backend: NumPy arrays, the heavy kernels compiled by Numba.

Imported only when chosen (the registry does it), so Numba stays optional. It extends the
NumPy backend the way the CuPy backend does: it overrides exactly the kernels it compiles
(``numba_kernels.py``) and calls ``super()`` for the rest and for inputs it does not compile
(integers, float16, mixed dtypes). Matrix products stay on BLAS. The kernels' callers are in a
file per family, as the NumPy backend's: ``numba_convolution.py`` (grouped convolutions in
``numba_groups.py``), ``numba_pooling.py``, ``numba_normalization.py``; ReLU, softmax
cross-entropy and the optimizers' updates are here, beside the machinery they all run on.

Where the time goes, and why these kernels: with NumPy alone a CNN step spends about half its
time outside the products, in window copies (im2col), col2im's additions, pooling's passes
and ReLU's: each a Python-level loop of whole-array passes. Here each is one compiled pass
over a part of the batch. What it compiles: the convolutions' window gathers and col2im, max
and sum pooling and their gradients, ReLU and its gradient, softmax cross-entropy, the
optimizers' updates, batch norm (statistics, forward, backward: over rows of channels, a
conv's channels-last output, or over planes of a C-contiguous array) and dropout's mask.

The backend owns the CPU's parallel machinery, in one place (``run_parts`` and the methods
beside it): a batch's parts run on its worker threads (``threads.Workers``), the compiled
kernels and the parts' products alike, with OpenBLAS held to one thread per product
meanwhile (``threads.BlasThreads``); Numba's own threading layer is not used, so no second
pool spins against these. It also asks glibc's malloc to keep freed memory
(``keep_freed_memory``). The NumPy backend does none of this.
"""
from __future__ import annotations

import ctypes
import gc
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import BackendError

try:
    import numba
except ImportError as _err:  # the registry turns this into a message naming the variable
    raise BackendError(
        f"Numba is not installed ({_err}). Install it with: pip install 'autograd-cnn[fast]', "
        "or use the numpy backend.") from None

from . import numba_kernels as kernels
from .numba_convolution import NumbaConvolution
from .numba_layouts import compiled_for, empty_in_layout, flat_in_layout, layout_of
from .numba_normalization import NumbaNormalization
from .numba_pooling import NumbaPooling
from .numpy_backend import NumpyBackend
from .threads import BlasThreads, Workers, thread_count

#: Set to 0 to leave the C library's malloc settings as they are (see ``keep_freed_memory``).
MEMORY_ENV_VAR = "AUTOGRAD_CNN_CACHE_MEMORY"


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse; True when it took the settings.

    NumPy takes every array from malloc. By default glibc maps a block of a few MiB afresh
    for each new array and hands it back to the kernel when the array is freed, so every
    activation and gradient of a training step pays a page fault per 4 KiB (the kernel
    zeroes each page): about a third of the lecture CNN's step. Raising the mmap and trim
    thresholds lets freed blocks serve the next arrays (as PyTorch's GPU allocator keeps its
    blocks); the process keeps its peak size instead of shrinking between steps. Only glibc
    has ``mallopt``; elsewhere (macOS, Windows, musl) nothing changes. A setting for the whole
    process, made when the numba backend is first used (``AUTOGRAD_CNN_CACHE_MEMORY=0``: not made).
    """
    if os.environ.get(MEMORY_ENV_VAR, "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # Older glibc caps the mmap threshold at 32 MiB. The trim threshold is set only when the
    # mmap one took: alone it would send every large array to mmap, the slow path.
    took = mallopt(m_mmap_threshold, 1 << 30) or mallopt(m_mmap_threshold, 32 << 20)
    return bool(took and mallopt(m_trim_threshold, 1 << 30))


def settle_library_objects() -> None:
    """Take the objects that exist now (Numba's own, some 30,000: it more than doubles the Python
    heap) out of the cycle collector's full passes, for the life of the process (``gc.freeze``).

    Recording a graph makes many small objects, and every so often the collector's full pass
    scans the whole heap: with Numba's objects in it, those passes cost about 10% of a chain of
    tiny ops, more than the NumPy backend pays. Library objects live as long as the process, so
    scanning them finds nothing. Garbage is collected first, so only live objects are set aside.
    """
    gc.collect()
    gc.freeze()


class NumbaBackend(NumbaConvolution, NumbaPooling, NumbaNormalization, NumpyBackend):
    """NumPy arrays on the CPU: convolution windows, pooling, ReLU, softmax cross-entropy, batch
    norm, dropout and the optimizers' updates compiled by Numba, run in parts of the batch on
    worker threads; everything else as the NumPy backend."""

    name = "numba"

    def __init__(self) -> None:
        super().__init__()
        self.caches_memory = keep_freed_memory()
        # Threads only where BLAS can be held to one thread while they run (OpenBLAS, found
        # by its C functions): two thread pools on the same cores would take turns spinning.
        self.blas = BlasThreads.find()
        self._blas_spinning = False  # a product has run on BLAS's threads since they were last ended
        self._blas_parked: int | None = None  # BLAS's own count, while it is kept on one thread
        self.set_threads(thread_count(quiet=True))  # the registry checks AUTOGRAD_CNN_THREADS itself
        settle_library_objects()

    # --- the worker threads: the one pool the CPU kernels run on ---------------------
    def set_threads(self, count: int) -> None:
        """Run the kernels' parts on ``count`` threads (1: each kernel on the calling thread);
        without OpenBLAS's thread controls the kernels keep to one."""
        self.threads = count if self.blas is not None else 1
        self.workers = Workers(self.threads)

    def blas_product(self, a: Any, b: Any) -> Any:
        """a @ b on BLAS's own threads. Those threads then spin for a while, waiting for more
        work, on the cores the worker threads need: the next kernel in several parts ends them
        (``run_parts``). Without the means to end them, the product runs in a part per worker
        thread instead."""
        if self.threads == 1 or self.blas is None or not self.blas.can_stop:
            out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
            size = -(-a.shape[0] // self.threads)
            self.run_parts(lambda rows: np.dot(a[rows], b, out=out[rows]),
                           [slice(start, min(start + size, a.shape[0])) for start in range(0, a.shape[0], size)])
            return out
        self.release_blas()  # BLAS starts its threads again for this product
        self._blas_spinning = True
        return a @ b

    def release_blas(self) -> None:
        """Give OpenBLAS back its own thread count if the kernels left it on one thread (see
        ``run_parts``), for products of the program's own that should use every core at once."""
        if self._blas_parked is not None:
            self.blas.set(self._blas_parked)
            self._blas_parked = None

    def run_parts(self, fn: Callable[[Any], Any], parts: Sequence[Any]) -> list:
        """The parts on the worker threads, with BLAS on one thread for each product meanwhile;
        BLAS's own count (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, threadpoolctl) caps the threads.

        After a product on BLAS's threads (``blas_product``), the first kernel in several parts
        ends those threads, and BLAS then keeps one thread, its count "parked", until the next
        such product: OpenBLAS starts its threads again whenever its count is set, and new
        threads spin too. Ending them is safe because the library's own products run only here
        and in ``blas_product``, never while the worker threads run."""
        blas_threads = (self._blas_parked or self.blas.get()) if self.threads > 1 else 1
        if blas_threads == 1:
            return [fn(part) for part in parts]
        count = min(self.threads, blas_threads)
        if self._blas_parked is None:
            self.blas.set(1)
            if not (self._blas_spinning and len(parts) > 1):
                try:
                    return self.workers.run(fn, parts, count=count)
                finally:
                    self.blas.set(blas_threads)
            self.blas.stop()  # its threads would take the cores from the workers
            self._blas_spinning, self._blas_parked = False, blas_threads
        return self.workers.run(fn, parts, count=count)  # BLAS parked on one thread

    # --- elementwise -----------------------------------------------------------------
    def relu_with_mask(self, x: Any) -> tuple:
        if x.nbytes < self.min_parallel_bytes or not compiled_for(x):
            return super().relu_with_mask(x)  # a small array: NumPy's two passes cost less than a call here
        order = layout_of(x)
        flat_x = flat_in_layout(x, order)
        if flat_x is None:
            return super().relu_with_mask(x)
        y, positive = empty_in_layout(x.shape, order, x.dtype), empty_in_layout(x.shape, order, bool)
        flat_y, flat_positive = flat_in_layout(y, order), flat_in_layout(positive, order)
        self.run_parts(lambda part: kernels.relu_with_mask(flat_x, part.start, part.stop, flat_y, flat_positive),
                       self.batch_parts(flat_x.size, 2 * x.itemsize + 1))
        return y, positive

    def relu_grad(self, gy: Any, positive: Any) -> Any:
        if gy.nbytes < self.min_parallel_bytes or not compiled_for(gy) or gy.shape != positive.shape:
            return super().relu_grad(gy, positive)
        order = layout_of(positive)
        flat_gy, flat_positive = flat_in_layout(gy, order), flat_in_layout(positive, order)
        if flat_gy is None or flat_positive is None:  # gy in another layout: NumPy's copy into the mask's
            return super().relu_grad(gy, positive)
        gx = empty_in_layout(positive.shape, order, gy.dtype)  # the mask's layout
        flat_gx = flat_in_layout(gx, order)
        self.run_parts(lambda part: kernels.relu_grad(flat_gy, flat_positive, part.start, part.stop, flat_gx),
                       self.batch_parts(flat_gy.size, 2 * gy.itemsize + 1))
        return gx

    # --- softmax cross-entropy --------------------------------------------------------
    def softmax_cross_entropy(self, z: Any, q: Any) -> Any:
        if not (compiled_for(z, q) and z.size and z.shape == q.shape):
            return super().softmax_cross_entropy(z, q)
        rows = (-1, z.shape[-1])
        loss = np.empty(z.shape[:-1], dtype=z.dtype)
        kernels.softmax_cross_entropy(np.ascontiguousarray(z).reshape(rows), np.ascontiguousarray(q).reshape(rows),
                                      loss.reshape(-1))
        return loss

    def softmax_cross_entropy_grad(self, z: Any, q: Any, g: Any, q_sums_to_one: bool) -> Any:
        if not (compiled_for(z, q, g) and z.size and z.shape == q.shape and g.shape == z.shape[:-1]):
            return super().softmax_cross_entropy_grad(z, q, g, q_sums_to_one)
        rows = (-1, z.shape[-1])
        gz = np.empty(z.shape, dtype=z.dtype)
        kernels.softmax_cross_entropy_grad(np.ascontiguousarray(z).reshape(rows), np.ascontiguousarray(q).reshape(rows),
                                           np.ascontiguousarray(g).reshape(-1), bool(q_sums_to_one), gz.reshape(rows))
        return gz

    # --- optimizer updates: one pass over each parameter ---------------------------------
    @staticmethod
    def _flat_params(*arrays: Any) -> list | None:
        """The arrays as flat views, when they are C-contiguous, of one shape, and compiled for."""
        first = arrays[0]
        if not (compiled_for(*arrays) and
                all(a.flags.c_contiguous and a.shape == first.shape for a in arrays)):
            return None
        return [a.reshape(-1) for a in arrays]

    def sgd_momentum_update(self, p: Any, g: Any, buf: Any, lr: float, momentum: float, dampening: float,
                            nesterov: bool) -> None:
        flat = self._flat_params(p, g, buf)
        if flat is None:
            return super().sgd_momentum_update(p, g, buf, lr, momentum, dampening, nesterov)
        t = p.dtype.type  # the scalars in the parameter's dtype: float32 arithmetic stays float32
        kernels.sgd_momentum_update(*flat, t(lr), t(momentum), t(1 - dampening), bool(nesterov))

    def rmsprop_update(self, p: Any, g: Any, square_avg: Any, buf: Any, lr: float, alpha: float,
                       eps: float, momentum: float) -> None:
        flat = self._flat_params(p, g, square_avg) if buf is None else None
        if flat is None:
            return super().rmsprop_update(p, g, square_avg, buf, lr, alpha, eps, momentum)
        t = p.dtype.type
        kernels.rmsprop_update(*flat, t(lr), t(alpha), t(1 - alpha), t(eps))

    def adam_update(self, p: Any, g: Any, exp_avg: Any, exp_avg_sq: Any, betas: tuple, step_size: float,
                    bias2_sqrt: float, eps: float) -> None:
        flat = self._flat_params(p, g, exp_avg, exp_avg_sq)
        if flat is None:
            return super().adam_update(p, g, exp_avg, exp_avg_sq, betas, step_size, bias2_sqrt, eps)
        t, (b1, b2) = p.dtype.type, betas
        kernels.adam_update(*flat, t(b1), t(1 - b1), t(b2), t(1 - b2), t(step_size), t(bias2_sqrt), t(eps))

    # Keras 3's formulas (keras.optimizers)
    def keras_sgd_momentum_update(self, p: Any, g: Any, m: Any, lr: float, momentum: float, nesterov: bool) -> None:
        flat = self._flat_params(p, g, m)
        if flat is None:
            return super().keras_sgd_momentum_update(p, g, m, lr, momentum, nesterov)
        t = p.dtype.type
        kernels.keras_sgd_momentum_update(*flat, t(lr), t(momentum), bool(nesterov))

    def keras_rmsprop_update(self, p: Any, g: Any, velocity: Any, average_grad: Any, buf: Any, lr: float,
                             rho: float, epsilon: float, momentum: float) -> None:
        extra = [a for a in (average_grad, buf) if a is not None]
        flat = self._flat_params(p, g, velocity, *extra)
        if flat is None:
            return super().keras_rmsprop_update(p, g, velocity, average_grad, buf, lr, rho, epsilon, momentum)
        t, unused = p.dtype.type, flat[2][:0]  # an empty array where a slot is not kept
        average = flat[3] if average_grad is not None else unused
        velocity_buf = flat[-1] if buf is not None else unused
        kernels.keras_rmsprop_update(flat[0], flat[1], flat[2], average, average_grad is not None, velocity_buf,
                                     buf is not None, t(lr), t(rho), t(1 - rho), t(epsilon), t(momentum))

    def adadelta_update(self, p: Any, g: Any, square_avg: Any, acc_delta: Any, lr: float, rho: float,
                        eps: float) -> None:
        flat = self._flat_params(p, g, square_avg, acc_delta)
        if flat is None:
            return super().adadelta_update(p, g, square_avg, acc_delta, lr, rho, eps)
        t = p.dtype.type
        kernels.adadelta_update(*flat, t(lr), t(rho), t(1 - rho), t(eps))

    def adagrad_update(self, p: Any, g: Any, accumulator: Any, lr: float, epsilon: float) -> None:
        flat = self._flat_params(p, g, accumulator)
        if flat is None:
            return super().adagrad_update(p, g, accumulator, lr, epsilon)
        t = p.dtype.type
        kernels.adagrad_update(*flat, t(lr), t(epsilon))

    def describe(self) -> dict:
        return {**super().describe(), "backend": self.name, "numba": numba.__version__,
                "memory_cache": "on" if self.caches_memory else "off", "kernel_threads": self.threads}
