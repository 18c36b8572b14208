"""Pooling kernels: max pooling (its mask, scatter and gather) and sum pooling, against ``self.xp``.

They read windows as the convolution kernels do (channels-last, one strided slice per kernel
offset, through ``convolution``'s window functions); sum pooling's backward is col2im.
"""
from __future__ import annotations

from typing import Any

from .base import Backend
from .convolution import nhwc_padded, window_slice


def windows_by_offset(xh: Any, kernel_size: tuple, stride: tuple, dilation: tuple, out_hw: tuple) -> list:
    """The strided slice of xh (N, H, W, C) at every kernel offset, in row-major order: window
    element k of all windows."""
    kh, kw = kernel_size
    return [xh[window_slice(k // kw, k % kw, stride, dilation, out_hw)] for k in range(kh * kw)]


def tiles_by_two(kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple) -> bool:
    """The common pooling window: 2x2 at stride 2, without padding or dilation (max-pooling's fast path)."""
    return tuple(kernel_size) == tuple(stride) == (2, 2) and tuple(dilation) == (1, 1) and \
        tuple(padding) == ((0, 0), (0, 0))


class PoolingKernels(Backend):
    """max_pool2d and sum_pool2d with their gradients; a backend composing this also needs col2im
    (``ConvolutionKernels``) for sum_pool2d_spread."""

    def max_pool2d(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                   out_hw: tuple) -> Any:
        """The maximum of each window: a running maximum over the kernel offsets' strided slices."""
        if tiles_by_two(kernel_size, stride, padding, dilation):
            return self._max_pool_2x2(x, out_hw, with_mask=False)[0]
        windows = windows_by_offset(nhwc_padded(self.xp, x, padding, value=-self.xp.inf), kernel_size,
                                          stride, dilation, out_hw)
        return self._window_maximum(windows).transpose(0, 3, 1, 2)

    def max_pool2d_with_mask(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                             out_hw: tuple) -> tuple:
        """max_pool2d's output, and which element each window sends its gradient to: the first
        maximum, as PyTorch. The mask is a bool array (KH * KW, N, OH, OW, C): mask[k] marks the
        windows whose first maximum is at kernel offset k. (One padded copy serves both.)"""
        if tiles_by_two(kernel_size, stride, padding, dilation):
            return self._max_pool_2x2(x, out_hw, with_mask=True)
        windows = windows_by_offset(nhwc_padded(self.xp, x, padding, value=-self.xp.inf), kernel_size,
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

    def _max_pool_2x2(self, x: Any, out_hw: tuple, with_mask: bool) -> tuple:
        """max_pool2d of 2x2 windows at stride 2, and its mask when asked, a part of the batch at a time.

        Fast because the maxima of each window's top pair and bottom pair, computed once, give
        the output and, compared, the mask: four passes over strided slices where the general
        path takes seven, and a part's passes find it in cache.
        """
        xp, (oh, ow) = self.xp, out_hw
        n, ch = x.shape[0], x.shape[1]
        y = xp.empty((n, oh, ow, ch), dtype=x.dtype)
        mask = xp.empty((4, n, oh, ow, ch), dtype=bool) if with_mask else None

        def pool_part(part: slice) -> None:
            xh = xp.ascontiguousarray(x[part].transpose(0, 2, 3, 1))  # a view when x is channels-last
            a, b, c, d = (xh[:, i:2 * oh:2, j:2 * ow:2] for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
            top, bottom = xp.maximum(a, b), xp.maximum(c, d)
            xp.maximum(top, bottom, out=y[part])
            if mask is None:
                return
            # The first maximum in row-major order: the top row's on a tie between rows, then the
            # left element's on a tie within the row.
            m, in_top = mask[:, part], top >= bottom
            xp.greater_equal(a, b, out=m[0])
            xp.greater_equal(c, d, out=m[2])
            xp.greater(in_top, m[0], out=m[1])  # in the top row, and not at a: at b
            xp.logical_and(in_top, m[0], out=m[0])
            xp.logical_or(in_top, m[2], out=m[3])
            xp.logical_not(m[3], out=m[3])  # in the bottom row, and not at c: at d
            xp.greater(m[2], in_top, out=m[2])

        self.run_parts(pool_part, self.batch_parts(n, (x[0].size + 2 * y[0].size) * x.itemsize))
        return y.transpose(0, 3, 1, 2), mask

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
        (top, bottom), (left, right) = padding
        n, h, w, c = in_shape[0], in_shape[2], in_shape[3], in_shape[1]
        oh, ow = gy.shape[2:]
        gx = self.xp.empty((n, h + top + bottom, w + left + right, c), dtype=gy.dtype)
        # Windows that tile the image never share an element: each offset's slice is written
        # once, and only the rows and columns no window covers need zeros. Overlapping windows
        # add up into zeros.
        tiles = tuple(kernel_size) == tuple(stride) and tuple(dilation) == (1, 1)

        def scatter_part(part: slice) -> None:
            # Channels-last once (a no-op for a conv's gradient), not a strided read per offset.
            gyh, image = self.xp.ascontiguousarray(gy[part].transpose(0, 2, 3, 1)), gx[part]
            if tiles:
                image[:, oh * stride[0]:] = 0
                image[:, :, ow * stride[1]:] = 0
            else:
                image[...] = 0
            for k, window in enumerate(windows_by_offset(image, kernel_size, stride, dilation, (oh, ow))):
                if tiles:
                    self.xp.multiply(mask[k, part], gyh, out=window)
                else:
                    window += mask[k, part] * gyh

        self.run_parts(scatter_part, self.batch_parts(n, (gx[0].size + gy[0].size * 2) * gy.itemsize))
        return gx[:, top:top + h, left:left + w, :].transpose(0, 3, 1, 2)

    def max_pool2d_gather(self, x: Any, mask: Any, kernel_size: tuple, stride: tuple, padding: tuple,
                          dilation: tuple) -> Any:
        """Each window's chosen element of x (the adjoint of max_pool2d_scatter)."""
        xh = nhwc_padded(self.xp, x, padding)
        windows = windows_by_offset(xh, kernel_size, stride, dilation, mask.shape[2:4])
        y = self.xp.zeros(mask.shape[1:], dtype=x.dtype)
        for k, window in enumerate(windows):
            y += mask[k] * window
        return y.transpose(0, 3, 1, 2)

    def sum_pool2d(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, out_hw: tuple) -> Any:
        """The sum of each window (zeros in the padding), summed over the kernel's strided slices."""
        xh = nhwc_padded(self.xp, x, padding)
        kh, kw = kernel_size
        y = self.xp.zeros((xh.shape[0],) + tuple(out_hw) + (xh.shape[3],), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                y += xh[window_slice(i, j, stride, (1, 1), out_hw)]
        return y.transpose(0, 3, 1, 2)

    def sum_pool2d_spread(self, gy: Any, in_shape: tuple, kernel_size: tuple, stride: tuple,
                          padding: tuple) -> Any:
        """The adjoint of sum_pool2d: each window's gradient added to all its elements."""
        gyh = gy.transpose(0, 2, 3, 1)
        kh, kw = kernel_size
        cols = self.xp.broadcast_to(gyh[:, :, :, None, None, :], gyh.shape[:3] + (kh, kw, gyh.shape[3]))
        return self.col2im(cols, in_shape, stride, padding, (1, 1))
