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


def _part_sums(x: Any, part: slice, bias_from: str | None) -> Any:
    """The channel sums of the images ``part`` of x, where the bias's gradient comes from x."""
    return x[part].sum(axis=(0, 2, 3)) if bias_from == "x" else None


class ConvolutionKernels(Backend):
    """conv2d, its two gradients and the window matrices under them, written once against ``self.xp``.

    On the CPU each kernel runs over parts of the batch (``batch_parts``, ``run_parts``): a part's
    im2col rows are about ``part_bytes``, so a conv never holds a whole batch's matrix (18 MiB for
    the lecture CNN's second conv at batch 128), and the parts run on the backend's threads. A
    GPU takes the batch as one part. The products call ``xp.dot`` rather than ``matmul``: NumPy's
    matmul keeps the GIL through a product with a small output (a one-channel conv's weight
    gradient, a column sum), and the threads' products would take turns.
    """

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

    def _image_parts(self, x: Any, kernel_size: tuple, out_hw: tuple, out_channels: int) -> list:
        """The batch in parts for ``run_parts``, sized by what a conv touches per image: its im2col
        rows and its output rows."""
        per_image = out_hw[0] * out_hw[1] * (kernel_size[0] * kernel_size[1] * x.shape[1] + out_channels) * x.itemsize
        return self.batch_parts(x.shape[0], per_image)

    @staticmethod
    def _rows_of(part: slice, rows_per_image: int) -> slice:
        """The GEMM rows (N * OH * OW of them) of the images in ``part``."""
        return slice(part.start * rows_per_image, part.stop * rows_per_image)

    def _summed(self, shares: list) -> Any:
        """The parts' shares added up, in the parts' order (the same sum on every run)."""
        total = shares[0]
        for share in shares[1:]:
            total += share
        return total

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
        windows = self.im2col(x, kernel_size, stride, padding, dilation, out_hw)[..., 0]  # (N, OH, OW, KH, KW)
        kh, kw = kernel_size
        n, (oh, ow) = x.shape[0], out_hw
        planes = self.xp.empty((kh * kw + ones_row, n, oh, ow), dtype=x.dtype)
        # All the shifted copies in one call: NumPy then holds the GIL once, not once per offset.
        planes[:kh * kw].reshape(kh, kw, n, oh, ow)[...] = windows.transpose(3, 4, 0, 1, 2)
        if ones_row:
            planes[-1] = 1
        return planes.reshape(planes.shape[0], n * oh * ow)

    def conv2d(self, x: Any, weight: Any, bias: Any, stride: tuple, padding: tuple, dilation: tuple,
               groups: int, out_hw: tuple) -> Any:
        """Cross-correlation of x (N, C, H, W) with weight (O, C/G, KH, KW): one GEMM per part of the batch."""
        if groups != 1:
            if weight.shape[1] == 1:
                return self._depthwise_conv2d(x, weight, bias, stride, padding, dilation, out_hw)
            return self._grouped_conv2d(x, weight, bias, stride, padding, dilation, groups, out_hw)
        n, o, (oh, ow) = x.shape[0], weight.shape[0], out_hw
        window = (weight.shape[2:], stride, padding, dilation, out_hw)
        y = self.xp.empty((n, oh, ow, o), dtype=self.xp.result_type(x, weight))
        one_channel = x.shape[1] == 1 and not self.launch_bound
        if one_channel:
            # One input channel (a grayscale image): shifted planes, the bias as a last row.
            rows = weight.reshape(o, -1)
            if bias is not None:
                rows = self.xp.concatenate([rows, bias.reshape(o, 1)], axis=1)
            w_t = rows.T
        else:
            w_t = self._weight_matrix(weight).T

        def conv_part(part: slice) -> None:
            out = y[part].reshape(-1, o)  # a view: the product lands in y
            if one_channel:
                planes = self._offset_planes(x[part], *window, ones_row=bias is not None)
                self.xp.matmul(planes.T, w_t, out=out)  # a large output: matmul lets go of the GIL too
                return
            self.xp.dot(self.im2col_rows(x[part], *window), w_t, out=out)
            if bias is not None:
                out += bias

        self.run_parts(conv_part, self._image_parts(x, weight.shape[2:], out_hw, o))
        return y.transpose(0, 3, 1, 2)

    def _grouped_conv2d(self, x: Any, weight: Any, bias: Any, stride: tuple, padding: tuple, dilation: tuple,
                        groups: int, out_hw: tuple) -> Any:
        """conv2d with groups > 1: one batched GEMM over the groups, for the whole batch."""
        n, o, (oh, ow) = x.shape[0], weight.shape[0], out_hw
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
        into that offset's strided slice of the image, a part of the batch at a time. Each
        product stays in cache, and the full (M, KH*KW*C) column matrix is never held. On a
        ``launch_bound`` backend (a GPU): one product, then col2im.
        """
        if groups != 1 and weight.shape[1] == 1:
            return self._depthwise_grad_input(gy, weight, in_shape, stride, padding, dilation)
        n, o, oh, ow = gy.shape
        _, cg, kh, kw = weight.shape
        (top, bottom), (left, right) = padding
        h, w, c = in_shape[2], in_shape[3], cg * groups
        g_rows = self._grad_rows(gy, groups)
        if groups == 1 and self.launch_bound:
            cols = g_rows @ self._weight_matrix(weight)  # (M, KH*KW*C): every window's share
            return self.col2im(cols.reshape(n, oh, ow, kh, kw, c), in_shape, stride, padding, dilation)
        dtype = self.xp.result_type(gy, weight)  # a float16 gradient through a float32 weight gives float32
        out = self.xp.empty((n, h + top + bottom, w + left + right, c), dtype=dtype)
        # Each offset's weights as (G, O/G, C/G) matrices, made contiguous once for all the products.
        w_offsets = self.xp.ascontiguousarray(
            weight.reshape(groups, o // groups, cg, kh, kw).transpose(3, 4, 0, 1, 2))

        windows = [window_slice(i, j, stride, dilation, (oh, ow)) for i in range(kh) for j in range(kw)]
        # At stride 1 the first offset's windows cover the image but its last rows and columns:
        # the first product is written there, and only the rest needs zeros.
        first_writes = tuple(stride) == (1, 1)

        def grad_part(part: slice) -> None:
            image, count = out[part], part.stop - part.start
            if first_writes:
                image[:, oh:] = 0
                image[:, :oh, ow:] = 0
            else:
                image[...] = 0
            rows = g_rows[..., self._rows_of(part, oh * ow), :]
            share = self.xp.empty((count * oh * ow, c), dtype=dtype) if groups == 1 else None
            for k, window in enumerate(windows):
                if groups == 1:
                    self.xp.dot(rows, w_offsets[k // kw, k % kw, 0], out=share)  # one buffer for every offset
                else:
                    share = self.xp.matmul(rows, w_offsets[k // kw, k % kw]).transpose(1, 0, 2).reshape(-1, c)
                if k == 0 and first_writes:
                    image[window] = share.reshape(count, oh, ow, c)
                else:
                    image[window] += share.reshape(count, oh, ow, c)

        per_image = (out.shape[1] * out.shape[2] * c + oh * ow * (o + c)) * gy.itemsize
        self.run_parts(grad_part, self.batch_parts(n, per_image))
        return out[:, top:top + h, left:left + w, :].transpose(0, 3, 1, 2)

    def conv2d_grad_weight(self, x: Any, gy: Any, kernel_size: tuple, stride: tuple, padding: tuple,
                           dilation: tuple, groups: int, bias_from: str | None = None) -> Any:
        """The gradient of conv2d in the weight: (O, C/G, KH, KW) from x and gy, summed over parts of the batch.

        With ``bias_from`` ("gy" for a conv2d, "x" for a transposed convolution, whose output
        gradient comes in as x), also the bias's gradient, that argument's channel sums: the
        pair (weight gradient, bias gradient)."""
        o, c = gy.shape[1], x.shape[1]
        if groups != 1 and groups == c:
            gw = self._depthwise_grad_weight(x, gy, kernel_size, stride, padding, dilation)
            return gw if bias_from is None else (gw, self.channel_sum(gy if bias_from == "gy" else x))
        kh, kw = kernel_size
        oh, ow = gy.shape[2:]
        window = (kernel_size, stride, padding, dilation, (oh, ow))
        g_rows = self._grad_rows(gy, groups)
        if groups != 1 or self.launch_bound:
            cols = self._gemm_cols(x, kernel_size, stride, padding, dilation, (oh, ow), groups)
            gw = self.xp.matmul(g_rows.transpose(0, 2, 1) if groups != 1 else g_rows.T, cols)
            # (O, KH*KW*C/G) for one group, (G, O/G, KH*KW*C/G) for more: the same rows either way.
            gw = self.xp.ascontiguousarray(gw.reshape(o, kh, kw, c // groups).transpose(0, 3, 1, 2))
            return gw if bias_from is None else (gw, self.channel_sum(gy if bias_from == "gy" else x))
        # On the CPU the bias's channel sums come along when asked, a part at a time, where a
        # pass of its own would read the gradient again (0.6 ms of the lecture CNN's step). For
        # gy, with one channel a row of ones under the shifted planes sums it in the product;
        # with more, a product with ones while the part is in cache. For x, its part's sum.
        of_gy = bias_from == "gy"
        parts = self._image_parts(x, kernel_size, (oh, ow), o)
        if c == 1:
            def share(part: slice) -> tuple:  # (KH*KW, O) and (O,)
                total = self.xp.dot(self._offset_planes(x[part], *window, ones_row=of_gy),
                                    g_rows[self._rows_of(part, oh * ow)])
                return (total[:-1], total[-1]) if of_gy else (total, _part_sums(x, part, bias_from))
        else:
            longest = parts[0].stop - parts[0].start  # the first part
            ones = self.ones_vector(longest * oh * ow, gy.dtype) if of_gy else None

            def share(part: slice) -> tuple:  # (O, KH*KW*C) and (O,)
                rows = g_rows[self._rows_of(part, oh * ow)]
                gw_part = self.xp.dot(rows.T, self.im2col_rows(x[part], *window))
                return gw_part, (self.xp.dot(ones[:len(rows)], rows) if of_gy else _part_sums(x, part, bias_from))
        shares = self.run_parts(share, parts)
        gw = self._summed([share[0] for share in shares])
        gw = (gw.T if c == 1 else gw).reshape(o, kh, kw, c)
        gw = self.xp.ascontiguousarray(gw.transpose(0, 3, 1, 2))
        if bias_from is None:
            return gw
        source = gy if of_gy else x
        return gw, self._summed([share[1] for share in shares]).astype(source.dtype, copy=False)

    # --- depthwise: one input channel per group (groups == C; O = C * m, m the channel multiplier) ---
    # A product per channel would be (M, KH*KW) @ (KH*KW, m): far too thin for BLAS. Instead each
    # kernel offset's shifted image (channels innermost) times that offset's weights, added up:
    # KH*KW whole-array multiply-adds, a part of the batch at a time.
    def _depthwise_conv2d(self, x: Any, weight: Any, bias: Any, stride: tuple, padding: tuple, dilation: tuple,
                          out_hw: tuple) -> Any:
        n, c = x.shape[:2]
        o, _, kh, kw = weight.shape
        dtype = self.xp.result_type(x, weight)
        xh, w = nhwc_padded(self.xp, x, padding), weight.reshape(c, o // c, kh, kw).astype(dtype, copy=False)
        y = self.xp.empty((n,) + tuple(out_hw) + (c, o // c), dtype=dtype)

        def conv_part(part: slice) -> None:
            out, term = y[part], self.xp.empty_like(y[part])
            for k in range(kh * kw):
                i, j = divmod(k, kw)
                window = xh[part][window_slice(i, j, stride, dilation, out_hw)]  # (n, OH, OW, C)
                self.xp.multiply(window[..., None], w[:, :, i, j], out=out if k == 0 else term)
                if k:
                    out += term
            if bias is not None:
                out += bias.reshape(c, o // c)

        self.run_parts(conv_part, self.batch_parts(n, (xh[0].size + 2 * y[0].size) * y.itemsize))
        return y.reshape((n,) + tuple(out_hw) + (o,)).transpose(0, 3, 1, 2)

    def _depthwise_grad_input(self, gy: Any, weight: Any, in_shape: tuple, stride: tuple, padding: tuple,
                              dilation: tuple) -> Any:
        n, o, oh, ow = gy.shape
        c, (_, _, kh, kw), ((top, bottom), (left, right)) = in_shape[1], weight.shape, padding
        dtype = self.xp.result_type(gy, weight)
        g, w = gy.transpose(0, 2, 3, 1).reshape(n, oh, ow, c, o // c), weight.reshape(c, o // c, kh, kw)
        out = self.xp.zeros((n, in_shape[2] + top + bottom, in_shape[3] + left + right, c), dtype=dtype)

        def grad_part(part: slice) -> None:
            image, rows = out[part], g[part]
            for k in range(kh * kw):
                i, j = divmod(k, kw)
                share = (rows * w[:, :, i, j]).sum(axis=-1) if o != c else rows[..., 0] * w[:, 0, i, j]
                image[window_slice(i, j, stride, dilation, (oh, ow))] += share

        self.run_parts(grad_part, self.batch_parts(n, (out[0].size + 2 * g[0].size) * out.itemsize))
        return out[:, top:top + in_shape[2], left:left + in_shape[3], :].transpose(0, 3, 1, 2)

    def _depthwise_grad_weight(self, x: Any, gy: Any, kernel_size: tuple, stride: tuple, padding: tuple,
                               dilation: tuple) -> Any:
        (n, c), (o, oh, ow), (kh, kw) = x.shape[:2], gy.shape[1:], kernel_size
        xh, g = nhwc_padded(self.xp, x, padding), gy.transpose(0, 2, 3, 1).reshape(n, oh, ow, c, o // c)

        def share(part: slice) -> Any:  # (C, m, KH, KW)
            gw = self.xp.empty((c, o // c, kh, kw), dtype=self.xp.result_type(x, gy))
            for k in range(kh * kw):
                i, j = divmod(k, kw)
                window = xh[part][window_slice(i, j, stride, dilation, (oh, ow))]
                gw[:, :, i, j] = self.xp.einsum("nhwc,nhwcm->cm", window, g[part])
            return gw

        shares = self.run_parts(share, self.batch_parts(n, (xh[0].size + g[0].size) * gy.itemsize))
        return self._summed(shares).reshape(o, 1, kh, kw)

    def channel_sum(self, x: Any) -> Any:
        """x (N, C, ...) summed over every axis but 1, to (C,), by the fastest path for its layout."""
        if x.ndim == 2:  # rows: a product with ones is two to three times faster than sum(axis=0)
            return self._column_sums(x)
        if x.ndim != 4:
            return x.sum(axis=(0,) + tuple(range(2, x.ndim)))
        if x.strides[1] == x.itemsize:
            # Channels-last memory (a conv's own output): a product with a ones vector lets
            # BLAS read the (N*H*W, C) rows at full speed; a reduction over (0, 2, 3) crawls.
            return self._column_sums(x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1]))
        return self.xp.einsum("nchw->c", x)

    def _column_sums(self, rows: Any) -> Any:
        """The sum of the rows of an (M, C) matrix: products with a ones vector, a part of the rows each."""
        parts = self.batch_parts(rows.shape[0], rows.shape[1] * rows.itemsize)
        ones = self.ones_vector(parts[0].stop - parts[0].start, rows.dtype)  # the first part is the longest
        return self._summed(self.run_parts(lambda part: self.xp.dot(ones[:part.stop - part.start], rows[part]), parts))

    def ones_vector(self, length: int, dtype: Any) -> Any:
        """A vector of ones: a product with it sums rows (a GPU backend keeps it for reuse)."""
        return self.xp.ones(length, dtype=dtype)
