"""The numba backend's convolutions: windows gathered and scattered by compiled kernels, products on BLAS.

Methods of ``NumbaBackend`` (``numba_backend.py``), one file per kernel family as the NumPy
backend's are: each overrides the NumPy kernel of its name and calls ``super()`` for inputs it
does not compile, which reaches the NumPy backend's. ``run_parts`` and ``batch_parts`` are the
backend's worker threads.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import numba_groups
from . import numba_kernels as kernels
from .numba_layouts import channels_last, compiled_for, cropped, padded_image, window_geometry


class NumbaConvolution:
    """conv2d, its two gradients, im2col and col2im, compiled (grouped ones in numba_groups.py)."""

    def conv2d(self, x: Any, weight: Any, bias: Any, stride: tuple, padding: tuple, dilation: tuple,
               groups: int, out_hw: tuple) -> Any:
        """One product per part of the batch: its windows gathered by a compiled kernel (the bias
        folded in as a column of ones) times the weights."""
        arrays = (x, weight) if bias is None else (x, weight, bias)
        if not compiled_for(*arrays):
            return super().conv2d(x, weight, bias, stride, padding, dilation, groups, out_hw)
        n, o, (oh, ow) = x.shape[0], weight.shape[0], out_hw
        xh, geometry = channels_last(x, padding), window_geometry(weight.shape[2:], stride, dilation, out_hw)
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
        if not compiled_for(x):
            return super().im2col_rows(x, kernel_size, stride, padding, dilation, out_hw)
        n, c = x.shape[0], x.shape[1]
        cols = np.empty((n * out_hw[0] * out_hw[1], kernel_size[0] * kernel_size[1] * c), dtype=x.dtype)
        kernels.gather_windows(channels_last(x, padding), 0, n, window_geometry(kernel_size, stride, dilation, out_hw),
                               False, cols)
        return cols

    def conv2d_grad_input(self, gy: Any, weight: Any, in_shape: tuple, stride: tuple, padding: tuple,
                          dilation: tuple, groups: int) -> Any:
        """Per part of the batch: one product gives every window's share (gy's rows times the
        weights), and a compiled col2im adds the shares up into the image."""
        if not compiled_for(gy, weight):
            return super().conv2d_grad_input(gy, weight, in_shape, stride, padding, dilation, groups)
        n, o, oh, ow = gy.shape
        _, c, kh, kw = weight.shape
        geometry = window_geometry((kh, kw), stride, dilation, (oh, ow))
        if groups != 1:
            out = padded_image(in_shape, padding, gy.dtype)
            numba_groups.conv2d_grad_input(self, channels_last(gy), weight, out, geometry, groups)
            return cropped(out, in_shape, padding)
        g_rows = self._grad_rows(gy, 1)  # a view when gy is channels-last
        w_rows = self._weight_matrix(weight)  # (O, KH*KW*C)
        out = padded_image(in_shape, padding, gy.dtype)

        def grad_part(part: slice) -> None:
            shares = np.dot(g_rows[self._rows_of(part, oh * ow)], w_rows)
            kernels.add_windows(shares.reshape(-1, oh, ow, kh, kw, c), part.start, part.stop, geometry, out)

        per_image = (out[0].size + oh * ow * (o + kh * kw * c)) * gy.itemsize
        self.run_parts(grad_part, self.batch_parts(n, per_image))
        return cropped(out, in_shape, padding)

    def col2im(self, cols: Any, in_shape: tuple, stride: tuple, padding: tuple, dilation: tuple) -> Any:
        if not (compiled_for(cols) and cols.flags.c_contiguous):
            return super().col2im(cols, in_shape, stride, padding, dilation)
        n, oh, ow, kh, kw, c = cols.shape
        out = padded_image(in_shape, padding, cols.dtype)
        kernels.add_windows(cols, 0, n, window_geometry((kh, kw), stride, dilation, (oh, ow)), out)
        return cropped(out, in_shape, padding)

    def conv2d_grad_weight(self, x: Any, gy: Any, kernel_size: tuple, stride: tuple, padding: tuple,
                           dilation: tuple, groups: int, bias_from: str | None = None) -> Any:
        """Per part of the batch: gy's rows times the gathered windows. For the bias's gradient
        from gy ("gy"), a column of ones under the windows sums gy by channel in the same
        product; from x (a transposed convolution's), x's channel sums."""
        if not compiled_for(x, gy):
            return super().conv2d_grad_weight(x, gy, kernel_size, stride, padding, dilation, groups, bias_from)
        o, c, (kh, kw), (oh, ow) = gy.shape[1], x.shape[1], kernel_size, gy.shape[2:]
        xh, geometry = channels_last(x, padding), window_geometry(kernel_size, stride, dilation, (oh, ow))
        if groups != 1:
            gw, gb = numba_groups.conv2d_grad_weight(self, xh, channels_last(gy), kernel_size, geometry, groups,
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
