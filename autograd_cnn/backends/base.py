"""The Backend interface: what differs between NumPy and CuPy, and the heavy array kernels.

Kernels are written once against ``self.xp`` (NumPy's API, which CuPy mirrors), so
a backend only overrides what a benchmark shows is worth specialising.
"""
from __future__ import annotations

from typing import Any

from ..errors import ShapeError


class Backend:
    """One array library: its module ``xp``, host transfers, random numbers, kernels."""

    name: str = "?"
    xp: Any = None
    #: True where every array operation is a kernel launch that costs more than its memory
    #: traffic (a GPU): the conv kernels then take fewer, larger steps. False (the CPU): they
    #: take more, smaller steps that stay in cache or copy less.
    launch_bound: bool = False
    #: On a backend that is not launch-bound, the most bytes of im2col matrix a conv holds at
    #: once: a larger batch is built and multiplied in slices of images. The GEMMs run as fast
    #: on slices (timed in turn on the lecture CNN's second conv), and the step's peak memory
    #: is not a whole batch's matrix higher (18 MiB for that conv at batch 128).
    cols_bytes: int = 8 << 20

    def __init__(self) -> None:
        self._rng = None

    def __repr__(self) -> str:
        return f"<autograd_cnn backend {self.name!r}>"

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        # ag.get_backend() == "numpy" reads naturally in user code and tests.
        if isinstance(other, str):
            return other == self.name
        return other is self

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self) -> tuple:
        # One instance per backend: copy.deepcopy and pickle of tensors and models resolve
        # to the registry's instance, so ops never see "numpy and numpy" as two backends.
        from . import get_backend

        return (get_backend, (self.name,))

    # --- arrays -----------------------------------------------------------
    def is_array(self, obj: Any) -> bool:
        """True when ``obj`` is this backend's array type."""
        return isinstance(obj, self.xp.ndarray)

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """Data (host or this backend's) as this backend's array."""
        return self.xp.asarray(data, dtype=dtype)

    def scalar(self, value: bool | int | float, dtype: Any = None) -> Any:
        """A 0-d array holding a Python number, for ``x * 0.5`` and the like."""
        return self.xp.asarray(value, dtype=dtype)

    def to_host(self, array: Any) -> Any:
        """A NumPy array with the same values."""
        raise NotImplementedError

    def from_host(self, array: Any) -> Any:
        """This backend's array from a NumPy array."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued work (a no-op on the CPU); benchmarks call it before reading a clock."""

    # --- random numbers ---------------------------------------------------
    @property
    def rng(self) -> Any:
        """The backend's random generator, seeded by ``ag.manual_seed``."""
        if self._rng is None:
            self._rng = self.xp.random.default_rng()
        return self._rng

    def seed(self, seed: int) -> None:
        self._rng = self.xp.random.default_rng(seed)

    # --- device description (for `autograd-cnn info`) ---------------------
    def describe(self) -> dict:
        return {"backend": self.name}

    # --- indexing ---------------------------------------------------------
    def scatter_add(self, out: Any, index: Any, values: Any) -> None:
        """out[index] += values, adding repeated indices up (getitem's backward)."""
        self.xp.add.at(out, index, values)

    # --- special functions ------------------------------------------------
    def erf(self, x: Any) -> Any:
        """The error function (NumPy has none; GELU needs it)."""
        import math

        import numpy as np

        host = self.to_host(x)
        out = np.frompyfunc(math.erf, 1, 1)(host).astype(host.dtype)
        return self.from_host(out)

    # --- convolution and pooling kernels ------------------------------------
    # Images are (N, C, H, W) to the user, but the kernels work channels-last: they read
    # x.transpose(0, 2, 3, 1) and return NCHW-shaped transposes of NHWC arrays. A conv's
    # output then feeds the next layer's im2col without a copy (as PyTorch's channels_last),
    # and one GEMM per conv covers the whole batch. ``padding`` is ((top, bottom), (left, right)).

    def _nhwc_padded(self, x: Any, padding: tuple, value: float = 0.0) -> Any:
        """x (N, C, H, W) as an (N, H + pads, W + pads, C) array; a view when there is no padding."""
        xh = x.transpose(0, 2, 3, 1)
        (top, bottom), (left, right) = padding
        if top == bottom == left == right == 0:
            return xh
        n, h, w, c = xh.shape
        out = self.xp.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
        out[:, top:top + h, left:left + w, :] = xh
        return out

    @staticmethod
    def _window_slice(i: int, j: int, stride: tuple, dilation: tuple, out_hw: tuple) -> tuple:
        """The NHWC index of kernel offset (i, j) in every window: one strided slice."""
        (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
        return (slice(None), slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
                slice(j * dw, j * dw + sw * (ow - 1) + 1, sw), slice(None))

    def im2col(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
               out_hw: tuple) -> Any:
        """The (N, OH, OW, KH, KW, C) windows of x (N, C, H, W): a strided view, no copy."""
        xh = self._nhwc_padded(x, padding)
        (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel_size, stride, dilation, out_hw
        n, _, _, c = xh.shape
        s_n, s_h, s_w, s_c = xh.strides
        return self.xp.lib.stride_tricks.as_strided(
            xh, (n, oh, ow, kh, kw, c), (s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c))

    def im2col_rows(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                    out_hw: tuple) -> Any:
        """The windows as GEMM rows: an (N * OH * OW, KH * KW * C) matrix (one group)."""
        windows = self.im2col(x, kernel_size, stride, padding, dilation, out_hw)
        n, oh, ow, kh, kw, c = windows.shape
        return windows.reshape(n * oh * ow, kh * kw * c)

    def col2im(self, cols: Any, in_shape: tuple, stride: tuple, padding: tuple,
               dilation: tuple) -> Any:
        """The adjoint of im2col: add the (N, OH, OW, KH, KW, C) windows back into an (N, C, H, W) image."""
        n, oh, ow, kh, kw, c = cols.shape
        (top, bottom), (left, right) = padding
        h, w = in_shape[2], in_shape[3]
        out = self.xp.zeros((n, h + top + bottom, w + left + right, c), dtype=cols.dtype)
        # One strided slice per kernel offset; windows at one offset never overlap.
        for i in range(kh):
            for j in range(kw):
                out[self._window_slice(i, j, stride, dilation, (oh, ow))] += cols[:, :, :, i, j, :]
        return out[:, top:top + h, left:left + w, :].transpose(0, 3, 1, 2)

    def _gemm_cols(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                   out_hw: tuple, groups: int) -> Any:
        """The windows of x as GEMM rows: (M, K) for one group (im2col_rows), else (G, M, K/G)."""
        if groups == 1:
            return self.im2col_rows(x, kernel_size, stride, padding, dilation, out_hw)
        windows = self.im2col(x, kernel_size, stride, padding, dilation, out_hw)
        n, oh, ow, kh, kw, c = windows.shape
        per_group = windows.reshape(n, oh, ow, kh, kw, groups, c // groups)
        return per_group.transpose(5, 0, 1, 2, 3, 4, 6).reshape(groups, n * oh * ow, kh * kw * (c // groups))

    def _image_slices(self, x: Any, kernel_size: tuple, out_hw: tuple) -> list:
        """The batch as slices of images whose im2col rows fit in ``cols_bytes`` (one slice,
        the whole batch, on a launch-bound backend)."""
        n = x.shape[0]
        per_image = out_hw[0] * out_hw[1] * kernel_size[0] * kernel_size[1] * x.shape[1] * x.itemsize
        step = n if self.launch_bound else max(1, self.cols_bytes // max(per_image, 1))
        return [slice(start, min(start + step, n)) for start in range(0, max(n, 1), step)]

    @staticmethod
    def _weight_matrix(weight: Any) -> Any:
        """One group's weight (O, C, KH, KW) as (O, KH*KW*C), matching the channels-last columns."""
        o, c, kh, kw = weight.shape
        return weight.transpose(0, 2, 3, 1).reshape(o, kh * kw * c)

    @staticmethod
    def _weight_rows(weight: Any, groups: int) -> Any:
        """Grouped weight (O, C/G, KH, KW) as (G, O/G, KH*KW*C/G), matching the channels-last columns."""
        o, cg, kh, kw = weight.shape
        return weight.reshape(groups, o // groups, cg, kh, kw).transpose(0, 1, 3, 4, 2).reshape(
            groups, o // groups, kh * kw * cg)

    def _offset_planes(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                       out_hw: tuple, ones_row: bool = False) -> Any:
        """im2col for a one-channel image, transposed: a (KH*KW, M) matrix whose row k holds
        element k of every window, plus a row of ones when asked (a bias folded into the GEMM).

        With one channel, the (M, KH*KW) rows of im2col are gathered a float at a time;
        row k here is one shifted copy of the image, about six times faster to make.
        """
        xh = self._nhwc_padded(x, padding)[..., 0]
        kh, kw = kernel_size
        n, (oh, ow) = xh.shape[0], out_hw
        planes = self.xp.empty((kh * kw + ones_row, n, oh, ow), dtype=x.dtype)
        for k in range(kh * kw):
            planes[k] = xh[self._window_slice(k // kw, k % kw, stride, dilation, out_hw)[:3]]
        if ones_row:
            planes[-1] = 1
        return planes.reshape(planes.shape[0], n * oh * ow)

    def conv2d(self, x: Any, weight: Any, bias: Any, stride: tuple, padding: tuple, dilation: tuple,
               groups: int, out_hw: tuple) -> Any:
        """Cross-correlation of x (N, C, H, W) with weight (O, C/G, KH, KW): one GEMM (per group)."""
        n = x.shape[0]
        o, oh, ow = weight.shape[0], out_hw[0], out_hw[1]
        if x.shape[1] == 1 and not self.launch_bound:
            # One input channel (a grayscale image): shifted planes, the bias as a last row.
            planes = self._offset_planes(x, weight.shape[2:], stride, padding, dilation, out_hw,
                                         ones_row=bias is not None)
            rows = weight.reshape(o, -1)
            if bias is not None:
                rows = self.xp.concatenate([rows, bias.reshape(o, 1)], axis=1)
            return (planes.T @ rows.T).reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
        if groups == 1:
            w_t = self._weight_matrix(weight).T
            parts = self._image_slices(x, weight.shape[2:], out_hw)
            if len(parts) == 1:
                y = self.im2col_rows(x, weight.shape[2:], stride, padding, dilation, out_hw) @ w_t
            else:  # a large batch on the CPU: its im2col matrix a slice at a time
                y = self.xp.empty((n * oh * ow, o), dtype=self.xp.result_type(x, weight))
                for part in parts:
                    cols = self.im2col_rows(x[part], weight.shape[2:], stride, padding, dilation, out_hw)
                    self.xp.matmul(cols, w_t, out=y[part.start * oh * ow:part.stop * oh * ow])
                    del cols  # before the next slice's matrix is built, not after
        else:
            cols = self._gemm_cols(x, weight.shape[2:], stride, padding, dilation, out_hw, groups)
            rows = self._weight_rows(weight, groups)
            y = self.xp.matmul(cols, rows.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(n * oh * ow, o)
        if bias is not None:
            y += bias
        return y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)

    def _grad_rows(self, gy: Any, groups: int) -> Any:
        """gy (N, O, OH, OW) as (M, O) for one group, else (G, M, O/G)."""
        n, o, oh, ow = gy.shape
        rows = gy.transpose(0, 2, 3, 1).reshape(n * oh * ow, o)
        if groups == 1:
            return rows
        return rows.reshape(n * oh * ow, groups, o // groups).transpose(1, 0, 2)

    def conv2d_grad_input(self, gy: Any, weight: Any, in_shape: tuple, stride: tuple, padding: tuple,
                          dilation: tuple, groups: int) -> Any:
        """The adjoint of conv2d in x (the transposed convolution): gy (N, O, OH, OW) to (N, C, H, W).

        On the CPU, col2im fused with the GEMM: one product per kernel offset, added straight
        into that offset's strided slice of the image. Each product is small enough to stay in
        cache, and the full (M, KH*KW*C) column matrix is never held. On a ``launch_bound``
        backend (a GPU): one product, then col2im.
        """
        n, o, oh, ow = gy.shape
        _, cg, kh, kw = weight.shape
        (top, bottom), (left, right) = padding
        h, w, c = in_shape[2], in_shape[3], cg * groups
        g_rows = self._grad_rows(gy, groups)
        if groups == 1 and self.launch_bound:
            cols = g_rows @ self._weight_matrix(weight)  # (M, KH*KW*C): every window's share
            return self.col2im(cols.reshape(n, oh, ow, kh, kw, c), in_shape, stride, padding, dilation)
        out = self.xp.zeros((n, h + top + bottom, w + left + right, c), dtype=gy.dtype)
        part = self.xp.empty((n * oh * ow, c), dtype=gy.dtype) if groups == 1 else None
        for i in range(kh):
            for j in range(kw):
                if groups == 1:
                    self.xp.matmul(g_rows, weight[:, :, i, j], out=part)  # one buffer for every offset
                else:
                    part = self.xp.matmul(g_rows, weight[:, :, i, j].reshape(groups, o // groups, cg))
                    part = part.transpose(1, 0, 2).reshape(n * oh * ow, c)
                out[self._window_slice(i, j, stride, dilation, (oh, ow))] += part.reshape(n, oh, ow, c)
        return out[:, top:top + h, left:left + w, :].transpose(0, 3, 1, 2)

    def conv2d_grad_weight(self, x: Any, gy: Any, kernel_size: tuple, stride: tuple, padding: tuple,
                           dilation: tuple, groups: int) -> Any:
        """The gradient of conv2d in the weight: (O, C/G, KH, KW) from x and gy."""
        o, c = gy.shape[1], x.shape[1]
        kh, kw = kernel_size
        g_rows = self._grad_rows(gy, groups)
        if c == 1 and not self.launch_bound:
            planes = self._offset_planes(x, kernel_size, stride, padding, dilation, gy.shape[2:])
            return self.xp.ascontiguousarray((planes @ g_rows).T).reshape(o, 1, kh, kw)
        if groups == 1:
            oh, ow = gy.shape[2:]
            parts = self._image_slices(x, kernel_size, (oh, ow))
            if len(parts) == 1:
                gw = g_rows.T @ self.im2col_rows(x, kernel_size, stride, padding, dilation, (oh, ow))
            else:  # a large batch on the CPU: its im2col matrix a slice at a time
                gw = None
                for part in parts:
                    cols = self.im2col_rows(x[part], kernel_size, stride, padding, dilation, (oh, ow))
                    share = g_rows[part.start * oh * ow:part.stop * oh * ow].T @ cols
                    gw = share if gw is None else self.xp.add(gw, share, out=gw)
                    del cols  # before the next slice's matrix is built, not after
        else:
            cols = self._gemm_cols(x, kernel_size, stride, padding, dilation, gy.shape[2:], groups)
            gw = self.xp.matmul(g_rows.transpose(0, 2, 1), cols)
        # (O, KH*KW*C/G) for one group, (G, O/G, KH*KW*C/G) for more: the same rows either way.
        gw = gw.reshape(o, kh, kw, c // groups).transpose(0, 3, 1, 2)
        return self.xp.ascontiguousarray(gw)

    def channel_sum(self, x: Any) -> Any:
        """x (N, C, ...) summed over every axis but 1, to (C,), by the fastest path for its layout."""
        if x.ndim == 2:  # rows: a product with ones is two to three times faster than sum(axis=0)
            return self._ones(x.shape[0], x.dtype) @ x
        if x.ndim != 4:
            return x.sum(axis=(0,) + tuple(range(2, x.ndim)))
        if x.strides[1] == x.itemsize:
            # Channels-last memory (a conv's own output): a product with a ones vector lets
            # BLAS read the (N*H*W, C) rows at full speed; a reduction over (0, 2, 3) crawls.
            rows = x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])
            return self._ones(rows.shape[0], x.dtype) @ rows
        return self.xp.einsum("nchw->c", x)

    def _ones(self, length: int, dtype: Any) -> Any:
        """A vector of ones: a product with it sums rows (a GPU backend keeps it)."""
        return self.xp.ones(length, dtype=dtype)

    def _windows_by_offset(self, xh: Any, kernel_size: tuple, stride: tuple, dilation: tuple,
                           out_hw: tuple) -> list:
        """The strided slice of every kernel offset, in row-major order: window element k of all windows."""
        kh, kw = kernel_size
        return [xh[self._window_slice(k // kw, k % kw, stride, dilation, out_hw)] for k in range(kh * kw)]

    def max_pool2d(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                   out_hw: tuple) -> Any:
        """The maximum of each window: a running maximum over the kernel offsets' strided slices."""
        windows = self._windows_by_offset(self._nhwc_padded(x, padding, value=-self.xp.inf), kernel_size,
                                          stride, dilation, out_hw)
        return self._window_maximum(windows).transpose(0, 3, 1, 2)

    def max_pool2d_with_mask(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                             out_hw: tuple) -> tuple:
        """max_pool2d's output, and which element each window sends its gradient to: the first
        maximum, as PyTorch. The mask is a bool array (KH * KW, N, OH, OW, C): mask[k] marks the
        windows whose first maximum is at kernel offset k. (One padded copy serves both.)"""
        windows = self._windows_by_offset(self._nhwc_padded(x, padding, value=-self.xp.inf), kernel_size,
                                          stride, dilation, out_hw)
        yh = self._window_maximum(windows)
        mask = self.xp.empty((len(windows),) + yh.shape, dtype=bool)
        self.xp.equal(windows[0], yh, out=mask[0])
        free = self.xp.logical_not(mask[0])  # windows whose maximum is not found yet
        for k in range(1, len(windows)):
            self.xp.equal(windows[k], yh, out=mask[k])
            self.xp.logical_and(mask[k], free, out=mask[k])  # a later tie loses to the earlier maximum
            if k + 1 < len(windows):
                self.xp.logical_xor(free, mask[k], out=free)  # mask[k] lies within free: this removes it
        return yh.transpose(0, 3, 1, 2), mask

    def _window_maximum(self, windows: list) -> Any:
        """The elementwise maximum of the offsets' slices (N, OH, OW, C), in a new array."""
        if len(windows) == 1:
            return windows[0].copy()
        y = self.xp.maximum(windows[0], windows[1])
        for window in windows[2:]:
            self.xp.maximum(y, window, out=y)
        return y

    def max_pool2d_scatter(self, gy: Any, mask: Any, in_shape: tuple, kernel_size: tuple, stride: tuple,
                           padding: tuple, dilation: tuple) -> Any:
        """gy (N, C, OH, OW) sent to each window's chosen element: an (N, C, H, W) gradient."""
        # Channels-last once (a no-op for a conv's gradient), not a strided read per offset.
        gyh = self.xp.ascontiguousarray(gy.transpose(0, 2, 3, 1))
        (top, bottom), (left, right) = padding
        n, h, w, c = in_shape[0], in_shape[2], in_shape[3], in_shape[1]
        (oh, ow), shape = gyh.shape[1:3], (n, h + top + bottom, w + left + right, c)
        # Windows that tile the image never share an element: each offset's slice is written
        # once, and only the rows and columns no window covers need zeros. Overlapping
        # windows add up into zeros.
        tiles = tuple(kernel_size) == tuple(stride) and tuple(dilation) == (1, 1)
        if tiles:
            gx = self.xp.empty(shape, dtype=gy.dtype)
            gx[:, oh * stride[0]:] = 0
            gx[:, :, ow * stride[1]:] = 0
        else:
            gx = self.xp.zeros(shape, dtype=gy.dtype)
        windows = self._windows_by_offset(gx, kernel_size, stride, dilation, (oh, ow))
        for k, window in enumerate(windows):
            if tiles:
                self.xp.multiply(mask[k], gyh, out=window)
            else:
                window += mask[k] * gyh
        return gx[:, top:top + h, left:left + w, :].transpose(0, 3, 1, 2)

    def max_pool2d_gather(self, x: Any, mask: Any, kernel_size: tuple, stride: tuple, padding: tuple,
                          dilation: tuple) -> Any:
        """Each window's chosen element of x (the adjoint of max_pool2d_scatter)."""
        xh = self._nhwc_padded(x, padding)
        windows = self._windows_by_offset(xh, kernel_size, stride, dilation, mask.shape[2:4])
        y = self.xp.zeros(mask.shape[1:], dtype=x.dtype)
        for k, window in enumerate(windows):
            y += mask[k] * window
        return y.transpose(0, 3, 1, 2)

    def sum_pool2d(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, out_hw: tuple) -> Any:
        """The sum of each window (zeros in the padding), summed over the kernel's strided slices."""
        xh = self._nhwc_padded(x, padding)
        kh, kw = kernel_size
        y = self.xp.zeros((xh.shape[0],) + tuple(out_hw) + (xh.shape[3],), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                y += xh[self._window_slice(i, j, stride, (1, 1), out_hw)]
        return y.transpose(0, 3, 1, 2)

    def sum_pool2d_spread(self, gy: Any, in_shape: tuple, kernel_size: tuple, stride: tuple,
                          padding: tuple) -> Any:
        """The adjoint of sum_pool2d: each window's gradient added to all its elements."""
        gyh = gy.transpose(0, 2, 3, 1)
        kh, kw = kernel_size
        cols = self.xp.broadcast_to(gyh[:, :, :, None, None, :], gyh.shape[:3] + (kh, kw, gyh.shape[3]))
        return self.col2im(cols, in_shape, stride, padding, (1, 1))

    # --- activations and losses -------------------------------------------------
    def relu_with_mask(self, x: Any) -> tuple:
        """max(x, 0) and the mask x > 0 (what ReLU's backward keeps)."""
        return self.xp.maximum(x, 0), x > 0

    def relu_grad(self, gy: Any, positive: Any) -> Any:
        """ReLU's backward: gy times the mask."""
        return gy * positive

    def softmax(self, x: Any, axis: int) -> Any:
        """e^x / sum e^x along an axis, with the maximum taken out first (no overflow)."""
        e = self.xp.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    def log_softmax(self, x: Any, axis: int) -> Any:
        """x - log sum e^x along an axis, stable in the same way."""
        shifted = x - x.max(axis=axis, keepdims=True)
        return shifted - self.xp.log(self.xp.exp(shifted).sum(axis=axis, keepdims=True))

    def softmax_cross_entropy(self, z: Any, q: Any) -> Any:
        """-sum_c q log softmax(z) over the last axis: one loss per row."""
        return -(q * self.log_softmax(z, -1)).sum(axis=-1)

    def softmax_cross_entropy_grad(self, z: Any, q: Any, g: Any, q_sums_to_one: bool) -> Any:
        """(softmax(z) * sum_c q - q) * g, per row; the sum is taken as 1 when q is known to sum to 1."""
        p = self.softmax(z, -1)
        if not q_sums_to_one:
            p *= q.sum(axis=-1, keepdims=True)
        return (p - q) * g[..., None]

    # --- one-hot targets -----------------------------------------------------
    def one_hot(self, op: str, target: Any, classes: int, on: float, off: float, dtype: Any) -> Any:
        """Rows of ``classes`` columns: ``on`` at each target's class, ``off`` elsewhere.

        A class index outside [0, classes) is a ShapeError naming ``op``.
        """
        if target.size and (int(target.min()) < 0 or int(target.max()) >= classes):
            raise ShapeError(_class_range_message(op, classes, int(target.min()), int(target.max())))
        q = self.xp.full(target.shape + (classes,), off, dtype=dtype)
        self.xp.put_along_axis(q, target[..., None].astype(self.xp.int64), on, axis=-1)
        return q

    # --- optimizer updates (in place; a backend may fuse each into one pass) ---
    def rmsprop_update(self, p: Any, g: Any, square_avg: Any, buf: Any, lr: float, alpha: float,
                       eps: float, momentum: float) -> None:
        """square_avg = alpha square_avg + (1 - alpha) g^2; step = g / (sqrt(square_avg) + eps);
        with momentum, buf = momentum buf + step and the step is buf; p -= lr step."""
        square_avg *= alpha
        square_avg += (1 - alpha) * g * g
        step = self.xp.sqrt(square_avg)
        step += eps
        self.xp.divide(g, step, out=step)
        if buf is not None:
            buf *= momentum
            buf += step
            step = buf
        p -= lr * step

    def adam_update(self, p: Any, g: Any, exp_avg: Any, exp_avg_sq: Any, betas: tuple, step_size: float,
                    bias2_sqrt: float, eps: float) -> None:
        """Adam's moving averages of g and g^2, then p -= step_size m / (sqrt(v) / bias2_sqrt + eps)
        (step_size = lr / (1 - beta1^t), bias2_sqrt = sqrt(1 - beta2^t): the bias corrections)."""
        b1, b2 = betas
        exp_avg *= b1
        exp_avg += (1 - b1) * g
        exp_avg_sq *= b2
        exp_avg_sq += (1 - b2) * g * g
        denom = self.xp.sqrt(exp_avg_sq)
        denom /= bias2_sqrt
        denom += eps
        self.xp.divide(exp_avg, denom, out=denom)  # reuse the buffer for the update direction
        denom *= step_size
        p -= denom

    def sgd_momentum_update(self, p: Any, g: Any, buf: Any, lr: float, momentum: float, dampening: float,
                            nesterov: bool) -> None:
        """buf = momentum buf + (1 - dampening) g; p -= lr (g + momentum buf if nesterov else buf)."""
        buf *= momentum
        buf += (1 - dampening) * g
        p -= lr * (g + momentum * buf if nesterov else buf)


def _class_range_message(op: str, classes: int, low: int, high: int) -> str:
    return f"{op}: class indices must lie in [0, {classes - 1}], got values from {low} to {high}"
