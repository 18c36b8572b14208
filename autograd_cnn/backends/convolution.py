"""Convolution kernels: im2col and col2im, the conv GEMMs and their gradients, channel sums.

Images are (N, C, H, W) to the user, but the kernels work channels-last: they read
x.transpose(0, 2, 3, 1) and return NCHW-shaped transposes of NHWC arrays. A conv's output
then feeds the next layer's im2col without a copy (as PyTorch's channels_last), and one GEMM
per conv covers the whole batch. ``padding`` is ((top, bottom), (left, right)). The pooling
kernels read their windows through the two functions below.
"""
from __future__ import annotations

from typing import Any

from .base import Backend


def nhwc_padded(xp: Any, x: Any, padding: tuple, value: float = 0.0) -> Any:
    """x (N, C, H, W) as an (N, H + pads, W + pads, C) array of ``xp``; a view when there is no padding."""
    xh = x.transpose(0, 2, 3, 1)
    (top, bottom), (left, right) = padding
    if top == bottom == left == right == 0:
        return xh
    n, h, w, c = xh.shape
    out = xp.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
    out[:, top:top + h, left:left + w, :] = xh
    return out


def window_slice(i: int, j: int, stride: tuple, dilation: tuple, out_hw: tuple) -> tuple:
    """The NHWC index of kernel offset (i, j) in every window: one strided slice."""
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    return (slice(None), slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (ow - 1) + 1, sw), slice(None))


class ConvolutionKernels(Backend):
    """conv2d, its two gradients and the window matrices under them, written once against ``self.xp``."""

    #: On a backend that is not launch-bound, the most bytes of im2col matrix a conv holds at
    #: once: a larger batch is built and multiplied in slices of images. The GEMMs run as fast
    #: on slices (timed in turn on the lecture CNN's second conv), and the step's peak memory
    #: is not a whole batch's matrix higher (18 MiB for that conv at batch 128).
    cols_bytes: int = 8 << 20

    def im2col(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
               out_hw: tuple) -> Any:
        """The (N, OH, OW, KH, KW, C) windows of x (N, C, H, W): a strided view, no copy."""
        xh = nhwc_padded(self.xp, x, padding)
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
                out[window_slice(i, j, stride, dilation, (oh, ow))] += cols[:, :, :, i, j, :]
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
        xh = nhwc_padded(self.xp, x, padding)[..., 0]
        kh, kw = kernel_size
        n, (oh, ow) = xh.shape[0], out_hw
        planes = self.xp.empty((kh * kw + ones_row, n, oh, ow), dtype=x.dtype)
        for k in range(kh * kw):
            planes[k] = xh[window_slice(k // kw, k % kw, stride, dilation, out_hw)[:3]]
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
                out[window_slice(i, j, stride, dilation, (oh, ow))] += part.reshape(n, oh, ow, c)
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
            return self.ones_vector(x.shape[0], x.dtype) @ x
        if x.ndim != 4:
            return x.sum(axis=(0,) + tuple(range(2, x.ndim)))
        if x.strides[1] == x.itemsize:
            # Channels-last memory (a conv's own output): a product with a ones vector lets
            # BLAS read the (N*H*W, C) rows at full speed; a reduction over (0, 2, 3) crawls.
            rows = x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])
            return self.ones_vector(rows.shape[0], x.dtype) @ rows
        return self.xp.einsum("nchw->c", x)

    def ones_vector(self, length: int, dtype: Any) -> Any:
        """A vector of ones: a product with it sums rows (a GPU backend keeps it for reuse)."""
        return self.xp.ones(length, dtype=dtype)
