"""The Numba backend: NumPy arrays, the heavy kernels compiled by Numba.

Imported only when chosen (the registry does it), so Numba stays optional. It extends the
NumPy backend the way the CuPy backend does: it overrides exactly the kernels it compiles
(``numba_kernels.py``) and calls ``super()`` for the rest and for inputs it does not compile
(integers, float16, mixed dtypes). Matrix products stay on BLAS; grouped convolutions have
their own module (``numba_groups.py``).

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

from . import numba_groups
from . import numba_kernels as kernels
from .convolution import nhwc_padded
from .numpy_backend import NumpyBackend
from .pooling import tiles_by_two
from .threads import BlasThreads, Workers, thread_count

#: Set to 0 to leave the C library's malloc settings as they are (see ``keep_freed_memory``).
MEMORY_ENV_VAR = "AUTOGRAD_CNN_CACHE_MEMORY"


def _geometry(kernel_size: tuple, stride: tuple, dilation: tuple, out_hw: tuple) -> tuple:
    """The window geometry the kernels take: (kh, kw, sh, sw, dh, dw, oh, ow)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    return tuple(int(v) for v in (kh, kw, sh, sw, dh, dw, out_hw[0], out_hw[1]))


def _channels_last(x: Any, padding: tuple = ((0, 0), (0, 0)), value: float = 0.0) -> np.ndarray:
    """x (N, C, H, W) as a C-contiguous, padded (N, H, W, C) array: a view for a conv's own output."""
    return np.ascontiguousarray(nhwc_padded(np, x, padding, value))


def _padded_image(shape: tuple, padding: tuple, dtype: Any) -> np.ndarray:
    """An uninitialised channels-last image (N, H + pads, W + pads, C) for an (N, C, H, W) shape."""
    (top, bottom), (left, right) = padding
    return np.empty((shape[0], shape[2] + top + bottom, shape[3] + left + right, shape[1]), dtype=dtype)


def _cropped(image: np.ndarray, in_shape: tuple, padding: tuple) -> np.ndarray:
    """A padded channels-last image as the (N, C, H, W) view of its unpadded part."""
    (top, _), (left, _) = padding
    return image[:, top:top + in_shape[2], left:left + in_shape[3], :].transpose(0, 3, 1, 2)


def _flat_in_layout(a: np.ndarray, order: tuple) -> np.ndarray | None:
    """a's elements as a flat view, in memory order ``order`` (axes from the largest stride
    down), or None when a is not dense in that order."""
    t = a.transpose(order)
    return t.reshape(-1) if t.flags.c_contiguous else None


def _empty_in_layout(shape: tuple, order: tuple, dtype: Any) -> np.ndarray:
    """An uninitialised array of ``shape`` whose memory runs through its axes in ``order``
    (a conv's channels-last activation stays channels-last)."""
    return np.empty(tuple(shape[axis] for axis in order), dtype=dtype).transpose(tuple(np.argsort(order)))


def _layout(a: np.ndarray) -> tuple:
    """The order of an array's axes in memory, from the largest stride down."""
    return tuple(sorted(range(a.ndim), key=lambda axis: -a.strides[axis]))


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


class NumbaBackend(NumpyBackend):
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

    @staticmethod
    def _compiles(*arrays: Any) -> bool:
        """Whether the compiled kernels take these arrays: float32 or float64, one dtype."""
        dtype = arrays[0].dtype
        return dtype in (np.float32, np.float64) and all(a.dtype == dtype for a in arrays)

    # --- convolution -------------------------------------------------------------
    def conv2d(self, x: Any, weight: Any, bias: Any, stride: tuple, padding: tuple, dilation: tuple,
               groups: int, out_hw: tuple) -> Any:
        """One product per part of the batch: its windows gathered by a compiled kernel (the bias
        folded in as a column of ones) times the weights."""
        arrays = (x, weight) if bias is None else (x, weight, bias)
        if not self._compiles(*arrays):
            return super().conv2d(x, weight, bias, stride, padding, dilation, groups, out_hw)
        n, o, (oh, ow) = x.shape[0], weight.shape[0], out_hw
        xh, geometry = _channels_last(x, padding), _geometry(weight.shape[2:], stride, dilation, out_hw)
        if groups != 1:
            return numba_groups.conv2d(self, xh, weight, bias, geometry, groups).transpose(0, 3, 1, 2)
        rows = self._weight_matrix(weight)
        if bias is not None:
            rows = np.concatenate([rows, bias.reshape(o, 1)], axis=1)
        w_t = rows.T
        y = np.empty((n, oh, ow, o), dtype=x.dtype)

        def conv_part(part: slice) -> None:
            out, count = y[part].reshape(-1, o), (part.stop - part.start) * oh * ow
            if x.shape[1] == 1:  # one channel: the windows as planes (see gather_planes)
                planes = np.empty((w_t.shape[0], count), dtype=x.dtype)
                kernels.gather_planes(xh, part.start, part.stop, geometry, bias is not None, planes)
                np.matmul(planes.T, w_t, out=out)  # a large output: matmul lets go of the GIL too
                return
            cols = np.empty((count, w_t.shape[0]), dtype=x.dtype)
            kernels.gather_windows(xh, part.start, part.stop, geometry, bias is not None, cols)
            np.dot(cols, w_t, out=out)

        self.run_parts(conv_part, self._image_parts(x, weight.shape[2:], out_hw, o))
        return y.transpose(0, 3, 1, 2)

    def im2col_rows(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                    out_hw: tuple) -> Any:
        if not self._compiles(x):
            return super().im2col_rows(x, kernel_size, stride, padding, dilation, out_hw)
        n, c = x.shape[0], x.shape[1]
        cols = np.empty((n * out_hw[0] * out_hw[1], kernel_size[0] * kernel_size[1] * c), dtype=x.dtype)
        kernels.gather_windows(_channels_last(x, padding), 0, n, _geometry(kernel_size, stride, dilation, out_hw),
                               False, cols)
        return cols

    def conv2d_grad_input(self, gy: Any, weight: Any, in_shape: tuple, stride: tuple, padding: tuple,
                          dilation: tuple, groups: int) -> Any:
        """Per part of the batch: one product gives every window's share (gy's rows times the
        weights), and a compiled col2im adds the shares up into the image."""
        if not self._compiles(gy, weight):
            return super().conv2d_grad_input(gy, weight, in_shape, stride, padding, dilation, groups)
        n, o, oh, ow = gy.shape
        _, c, kh, kw = weight.shape
        geometry = _geometry((kh, kw), stride, dilation, (oh, ow))
        if groups != 1:
            out = _padded_image(in_shape, padding, gy.dtype)
            numba_groups.conv2d_grad_input(self, _channels_last(gy), weight, out, geometry, groups)
            return _cropped(out, in_shape, padding)
        g_rows = self._grad_rows(gy, 1)  # a view when gy is channels-last
        w_rows = self._weight_matrix(weight)  # (O, KH*KW*C)
        out = _padded_image(in_shape, padding, gy.dtype)

        def grad_part(part: slice) -> None:
            shares = np.dot(g_rows[self._rows_of(part, oh * ow)], w_rows)
            kernels.add_windows(shares.reshape(-1, oh, ow, kh, kw, c), part.start, part.stop, geometry, out)

        per_image = (out[0].size + oh * ow * (o + kh * kw * c)) * gy.itemsize
        self.run_parts(grad_part, self.batch_parts(n, per_image))
        return _cropped(out, in_shape, padding)

    def col2im(self, cols: Any, in_shape: tuple, stride: tuple, padding: tuple, dilation: tuple) -> Any:
        if not (self._compiles(cols) and cols.flags.c_contiguous):
            return super().col2im(cols, in_shape, stride, padding, dilation)
        n, oh, ow, kh, kw, c = cols.shape
        out = _padded_image(in_shape, padding, cols.dtype)
        kernels.add_windows(cols, 0, n, _geometry((kh, kw), stride, dilation, (oh, ow)), out)
        return _cropped(out, in_shape, padding)

    def conv2d_grad_weight(self, x: Any, gy: Any, kernel_size: tuple, stride: tuple, padding: tuple,
                           dilation: tuple, groups: int, bias_from: str | None = None) -> Any:
        """Per part of the batch: gy's rows times the gathered windows. For the bias's gradient
        from gy ("gy"), a column of ones under the windows sums gy by channel in the same
        product; from x (a transposed convolution's), x's channel sums."""
        if not self._compiles(x, gy):
            return super().conv2d_grad_weight(x, gy, kernel_size, stride, padding, dilation, groups, bias_from)
        o, c, (kh, kw), (oh, ow) = gy.shape[1], x.shape[1], kernel_size, gy.shape[2:]
        xh, geometry = _channels_last(x, padding), _geometry(kernel_size, stride, dilation, (oh, ow))
        if groups != 1:
            gw, gb = numba_groups.conv2d_grad_weight(self, xh, _channels_last(gy), kernel_size, geometry, groups,
                                                     bias_from == "gy")
            return gw if bias_from is None else (gw, gb if gb is not None else self.channel_sum(x))
        g_rows, ones = self._grad_rows(gy, 1), int(bias_from == "gy")

        def share(part: slice) -> Any:  # (O, KH*KW*C [+ 1])
            rows, count = g_rows[self._rows_of(part, oh * ow)], (part.stop - part.start) * oh * ow
            if c == 1:
                planes = np.empty((kh * kw + ones, count), dtype=x.dtype)
                kernels.gather_planes(xh, part.start, part.stop, geometry, bool(ones), planes)
                return np.dot(planes, rows).T
            cols = np.empty((count, kh * kw * c + ones), dtype=x.dtype)
            kernels.gather_windows(xh, part.start, part.stop, geometry, bool(ones), cols)
            return np.dot(rows.T, cols)

        total = self._summed(self.run_parts(share, self._image_parts(x, kernel_size, (oh, ow), o)))
        gw = np.ascontiguousarray(total[:, :kh * kw * c].reshape(o, kh, kw, c).transpose(0, 3, 1, 2))
        if bias_from is None:
            return gw
        return gw, (np.ascontiguousarray(total[:, -1]) if ones else self.channel_sum(x))

    # --- pooling ---------------------------------------------------------------------
    def _max_pool(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                  out_hw: tuple, with_mask: bool) -> tuple:
        xh = _channels_last(x, padding, -np.inf)
        n, c = x.shape[0], x.shape[1]
        y = np.empty((n,) + tuple(out_hw) + (c,), dtype=x.dtype)
        mask = np.empty((kernel_size[0] * kernel_size[1],) + y.shape if with_mask else (1, 1, 1, 1, 1), dtype=bool)
        if tiles_by_two(kernel_size, stride, padding, dilation):
            def pool_part(part: slice) -> None:
                kernels.max_tiles_of_two(xh, part.start, part.stop, with_mask, y, mask)
        else:
            geometry = _geometry(kernel_size, stride, dilation, out_hw)

            def pool_part(part: slice) -> None:
                kernels.max_windows(xh, part.start, part.stop, geometry, with_mask, y, mask)
        self.run_parts(pool_part, self.batch_parts(n, (xh[0].size + y[0].size * (1 + len(mask))) * x.itemsize))
        return y.transpose(0, 3, 1, 2), mask

    def max_pool2d(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                   out_hw: tuple) -> Any:
        if not self._compiles(x):
            return super().max_pool2d(x, kernel_size, stride, padding, dilation, out_hw)
        return self._max_pool(x, kernel_size, stride, padding, dilation, out_hw, with_mask=False)[0]

    def max_pool2d_with_mask(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                             out_hw: tuple) -> tuple:
        if not self._compiles(x):
            return super().max_pool2d_with_mask(x, kernel_size, stride, padding, dilation, out_hw)
        return self._max_pool(x, kernel_size, stride, padding, dilation, out_hw, with_mask=True)

    def _spread(self, gy: Any, mask: Any, in_shape: tuple, kernel_size: tuple, stride: tuple, padding: tuple,
                dilation: tuple) -> Any:
        """Each window's gradient sent to its elements (all of them, or with a mask its chosen one)."""
        gyh, n = _channels_last(gy), in_shape[0]
        out = _padded_image(in_shape, padding, gy.dtype)
        geometry = _geometry(kernel_size, stride, dilation, gy.shape[2:])
        with_mask = mask is not None
        mask = mask if with_mask else np.empty((1, 1, 1, 1, 1), dtype=bool)
        self.run_parts(lambda part: kernels.spread_windows(gyh, mask, with_mask, part.start, part.stop, geometry, out),
                       self.batch_parts(n, (out[0].size + gyh[0].size * 2) * gy.itemsize))
        return _cropped(out, in_shape, padding)

    def max_pool2d_scatter(self, gy: Any, mask: Any, in_shape: tuple, kernel_size: tuple, stride: tuple,
                           padding: tuple, dilation: tuple) -> Any:
        if not (self._compiles(gy) and mask.flags.c_contiguous):
            return super().max_pool2d_scatter(gy, mask, in_shape, kernel_size, stride, padding, dilation)
        return self._spread(gy, mask, in_shape, kernel_size, stride, padding, dilation)

    def max_pool2d_gather(self, x: Any, mask: Any, kernel_size: tuple, stride: tuple, padding: tuple,
                          dilation: tuple) -> Any:
        """Each window's chosen element of x (a create_graph backward through max pooling), in one
        compiled pass per part of the batch."""
        if not (self._compiles(x) and mask.flags.c_contiguous):
            return super().max_pool2d_gather(x, mask, kernel_size, stride, padding, dilation)
        xh, n = _channels_last(x, padding), x.shape[0]
        y = np.empty(mask.shape[1:], dtype=x.dtype)
        geometry = _geometry(kernel_size, stride, dilation, mask.shape[2:4])
        self.run_parts(lambda part: kernels.gather_chosen(xh, mask, part.start, part.stop, geometry, y),
                       self.batch_parts(n, (xh[0].size + y[0].size) * x.itemsize + mask[:, 0].size))
        return y.transpose(0, 3, 1, 2)

    def sum_pool2d(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, out_hw: tuple) -> Any:
        if not self._compiles(x):
            return super().sum_pool2d(x, kernel_size, stride, padding, out_hw)
        xh, n = _channels_last(x, padding), x.shape[0]
        y = np.empty((n,) + tuple(out_hw) + (x.shape[1],), dtype=x.dtype)
        geometry = _geometry(kernel_size, stride, (1, 1), out_hw)
        self.run_parts(lambda part: kernels.sum_windows(xh, part.start, part.stop, geometry, y),
                       self.batch_parts(n, (xh[0].size + y[0].size) * x.itemsize))
        return y.transpose(0, 3, 1, 2)

    def sum_pool2d_spread(self, gy: Any, in_shape: tuple, kernel_size: tuple, stride: tuple,
                          padding: tuple) -> Any:
        if not self._compiles(gy):
            return super().sum_pool2d_spread(gy, in_shape, kernel_size, stride, padding)
        return self._spread(gy, None, in_shape, kernel_size, stride, padding, (1, 1))

    # --- elementwise -----------------------------------------------------------------
    def relu_with_mask(self, x: Any) -> tuple:
        if x.nbytes < self.min_parallel_bytes or not self._compiles(x):
            return super().relu_with_mask(x)  # a small array: NumPy's two passes cost less than a call here
        order = _layout(x)
        flat_x = _flat_in_layout(x, order)
        if flat_x is None:
            return super().relu_with_mask(x)
        y, positive = _empty_in_layout(x.shape, order, x.dtype), _empty_in_layout(x.shape, order, bool)
        flat_y, flat_positive = _flat_in_layout(y, order), _flat_in_layout(positive, order)
        self.run_parts(lambda part: kernels.relu_with_mask(flat_x, part.start, part.stop, flat_y, flat_positive),
                       self.batch_parts(flat_x.size, 2 * x.itemsize + 1))
        return y, positive

    def relu_grad(self, gy: Any, positive: Any) -> Any:
        if gy.nbytes < self.min_parallel_bytes or not self._compiles(gy) or gy.shape != positive.shape:
            return super().relu_grad(gy, positive)
        order = _layout(positive)
        flat_gy, flat_positive = _flat_in_layout(gy, order), _flat_in_layout(positive, order)
        if flat_gy is None or flat_positive is None:  # gy in another layout: NumPy's copy into the mask's
            return super().relu_grad(gy, positive)
        gx = _empty_in_layout(positive.shape, order, gy.dtype)  # the mask's layout
        flat_gx = _flat_in_layout(gx, order)
        self.run_parts(lambda part: kernels.relu_grad(flat_gy, flat_positive, part.start, part.stop, flat_gx),
                       self.batch_parts(flat_gy.size, 2 * gy.itemsize + 1))
        return gx

    # --- softmax cross-entropy --------------------------------------------------------
    def softmax_cross_entropy(self, z: Any, q: Any) -> Any:
        if not (self._compiles(z, q) and z.size and z.shape == q.shape):
            return super().softmax_cross_entropy(z, q)
        rows = (-1, z.shape[-1])
        loss = np.empty(z.shape[:-1], dtype=z.dtype)
        kernels.softmax_cross_entropy(np.ascontiguousarray(z).reshape(rows), np.ascontiguousarray(q).reshape(rows),
                                      loss.reshape(-1))
        return loss

    def softmax_cross_entropy_grad(self, z: Any, q: Any, g: Any, q_sums_to_one: bool) -> Any:
        if not (self._compiles(z, q, g) and z.size and z.shape == q.shape and g.shape == z.shape[:-1]):
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
        if not (NumbaBackend._compiles(*arrays) and
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

    def describe(self) -> dict:
        return {**super().describe(), "backend": self.name, "numba": numba.__version__,
                "memory_cache": "on" if self.caches_memory else "off", "kernel_threads": self.threads}

    # --- batch norm and dropout ----------------------------------------------------------
    def batch_norm_statistics(self, x: Any) -> tuple:
        """Each part's channel means and centred sums of squares in float64 (two passes over the
        part, the second from the cache), merged part by part in their order (Chan's formula)."""
        kind, form = _channel_form(x) if self._compiles(x) and x.size else (None, None)
        if kind is None:
            return super().batch_norm_statistics(x)
        c, per_item = x.shape[1], form[0].size  # elements of one row (image) of the form
        moments = kernels.moments_rows if kind == "rows" else kernels.moments_planes

        def part_moments(part: slice) -> tuple:
            mean, m2 = np.empty(c), np.empty(c)
            moments(form, part.start, part.stop, mean, m2)
            return (part.stop - part.start) * per_item // c, mean, m2

        count, mean, m2 = _merged_moments(self.run_parts(part_moments,
                                                         self.batch_parts(len(form), per_item * x.itemsize)))
        return mean.astype(x.dtype), (m2 / count).astype(x.dtype)

    def batch_norm(self, x: Any, mean: Any, var: Any, weight: Any, bias: Any, eps: float) -> tuple:
        """One pass writes y and x̂, in x's layout (a conv's channels-last output stays so)."""
        kind, form = _channel_form(x) if self._compiles(x, mean, var, weight, bias) and x.size else (None, None)
        if kind is None:
            return super().batch_norm(x, mean, var, weight, bias, eps)
        invstd = 1.0 / np.sqrt(var.astype(np.float64) + eps)
        vectors = [v.astype(np.float64) for v in (mean, weight, bias)]
        (y, y_form), (xhat, xhat_form) = _empty_in_form(kind, x), _empty_in_form(kind, x)
        normalize = kernels.normalize_rows if kind == "rows" else kernels.normalize_planes
        shift, w, b = vectors
        self.run_parts(lambda part: normalize(form, part.start, part.stop, shift, invstd, w, b, y_form, xhat_form),
                       self.batch_parts(len(form), form[0].size * 3 * x.itemsize))
        return y, xhat, invstd.astype(x.dtype)

    def batch_norm_grad(self, gy: Any, xhat: Any, weight: Any, invstd: Any, training: bool,
                        needs: tuple) -> tuple:
        """One pass sums gy and gy·x̂ by channel (float64, per part, added in the parts' order);
        a second writes gx in x̂'s layout."""
        kind, h_form = (_channel_form(xhat) if self._compiles(gy, xhat, weight, invstd) and gy.size
                        and gy.shape == xhat.shape else (None, None))
        if kind is None:
            return super().batch_norm_grad(gy, xhat, weight, invstd, training, needs)
        g_kind, g_form = _channel_form(gy)
        if g_kind != kind:  # gy in another layout (Flatten's C order): copied into x̂'s first
            gy_copy = np.empty_like(xhat)
            gy_copy[...] = gy
            g_kind, g_form = _channel_form(gy_copy)
            if g_kind != kind:
                return super().batch_norm_grad(gy, xhat, weight, invstd, training, needs)
        c, per_item, count = gy.shape[1], h_form[0].size, gy.size // gy.shape[1]
        sum_gy = sum_gy_xhat = None
        if needs[1] or needs[2] or (training and needs[0]):
            sums = kernels.grad_sums_rows if kind == "rows" else kernels.grad_sums_planes

            def part_sums(part: slice) -> tuple:
                a, b = np.empty(c), np.empty(c)
                sums(g_form, h_form, part.start, part.stop, a, b)
                return a, b

            shares = self.run_parts(part_sums, self.batch_parts(len(h_form), per_item * 2 * gy.itemsize))
            sum_gy, sum_gy_xhat = self._summed([s[0] for s in shares]), self._summed([s[1] for s in shares])
        gx = None
        if needs[0]:
            scale = weight.astype(np.float64) * invstd.astype(np.float64)
            mean_gy, mean_gy_xhat = (sum_gy / count, sum_gy_xhat / count) if training else (np.zeros(c), np.zeros(c))
            gx, gx_form = _empty_in_form(kind, xhat)
            grad = kernels.batch_norm_grad_rows if kind == "rows" else kernels.batch_norm_grad_planes
            self.run_parts(lambda part: grad(g_form, h_form, part.start, part.stop, training, scale, mean_gy,
                                             mean_gy_xhat, gx_form),
                           self.batch_parts(len(h_form), per_item * 3 * gy.itemsize))
        gw = sum_gy_xhat.astype(gy.dtype) if needs[1] else None
        gb = sum_gy.astype(gy.dtype) if needs[2] else None
        return gx, gw, gb

    def dropout_with_mask(self, x: Any, uniform: Any, p: float, dtype: Any) -> tuple:
        """The compare, scale and multiply in one pass; y and the mask in x's layout. The draws
        are the NumPy backend's, so one seed gives one mask on both."""
        if not (self._compiles(x, uniform) and x.dtype == dtype and x.size and x.shape == uniform.shape
                and x.ndim <= 4):
            return super().dropout_with_mask(x, uniform, p, dtype)
        t = uniform.dtype.type  # p in the draws' dtype, as NumPy compares a float32 array with it
        threshold, scale = t(p), t(0.0 if p >= 1 else 1.0 / (1.0 - p))
        if x.flags.c_contiguous and uniform.flags.c_contiguous:
            y, mask = np.empty_like(x), np.empty_like(uniform)
            flat = [a.reshape(-1) for a in (x, uniform, y, mask)]
            self.run_parts(lambda part: kernels.dropout_flat(flat[0], flat[1], part.start, part.stop, threshold,
                                                             scale, flat[2], flat[3]),
                           self.batch_parts(x.size, 4 * x.itemsize))
            return y, mask
        order = _layout(x)  # a conv's channels-last output: walk x's memory, read the draws strided
        if _flat_in_layout(x, order) is None:
            return super().dropout_with_mask(x, uniform, p, dtype)
        y, mask = _empty_in_layout(x.shape, order, x.dtype), _empty_in_layout(x.shape, order, x.dtype)
        lead = (1,) * (4 - x.ndim)
        views = [a.transpose(order).reshape(lead + tuple(x.shape[axis] for axis in order))
                 for a in (x, uniform, y, mask)]
        self.run_parts(lambda part: kernels.dropout_strided(views[0], views[1], part.start, part.stop, threshold,
                                                            scale, views[2], views[3]),
                       self.batch_parts(views[0].shape[0], views[0][0].size * 4 * x.itemsize))
        return y, mask


def _channel_form(x: np.ndarray) -> tuple:
    """x as batch norm's kernels take it: ("rows", (M, C)) when its channels are innermost in
    memory (a conv's channels-last output, an (N, C) batch), ("planes", (N, C, L)) when it is
    C-contiguous, else (None, None)."""
    last = np.moveaxis(x, 1, -1)
    if last.flags.c_contiguous:
        return "rows", last.reshape(-1, x.shape[1])
    if x.flags.c_contiguous:
        return "planes", x.reshape(x.shape[0], x.shape[1], -1)
    return None, None


def _empty_in_form(kind: str, x: np.ndarray) -> tuple:
    """An uninitialised array like x in the ``kind`` of layout, and its view in that form."""
    if kind == "rows":
        out = np.empty(x.shape[:1] + x.shape[2:] + x.shape[1:2], dtype=x.dtype)
        return np.moveaxis(out, -1, 1), out.reshape(-1, x.shape[1])
    out = np.empty(x.shape, dtype=x.dtype)
    return out, out.reshape(x.shape[0], x.shape[1], -1)


def _merged_moments(parts: list) -> tuple:
    """(count, mean, centred sum of squares) of the parts together, from each part's, merged in the
    parts' order: the merge adds the spread between the parts' means (Chan, Golub and LeVeque)."""
    count, mean, m2 = parts[0]
    for n, part_mean, part_m2 in parts[1:]:
        total = count + n
        delta = part_mean - mean
        mean = mean + delta * (n / total)
        m2 = m2 + part_m2 + delta * delta * (count * n / total)
        count = total
    return count, mean, m2
