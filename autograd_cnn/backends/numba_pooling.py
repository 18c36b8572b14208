"""The numba backend's pooling: max and sum pooling, their gradients and max pooling's double backward.

Methods of ``NumbaBackend`` (``numba_backend.py``), one file per kernel family as the NumPy
backend's are: each overrides the NumPy kernel of its name and calls ``super()`` for inputs it
does not compile, which reaches the NumPy backend's. ``run_parts`` and ``batch_parts`` are the
backend's worker threads.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import numba_kernels as kernels
from .numba_layouts import channels_last, compiled_for, cropped, padded_image, window_geometry
from .pooling import tiles_by_two


class NumbaPooling:
    """Max and sum pooling over parts of the batch, compiled."""

    def _max_pool(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                  out_hw: tuple, with_mask: bool) -> tuple:
        xh = channels_last(x, padding, -np.inf)
        n, c = x.shape[0], x.shape[1]
        y = np.empty((n,) + tuple(out_hw) + (c,), dtype=x.dtype)
        mask = np.empty((kernel_size[0] * kernel_size[1],) + y.shape if with_mask else (1, 1, 1, 1, 1), dtype=bool)
        if tiles_by_two(kernel_size, stride, padding, dilation):
            def pool_part(part: slice) -> None:
                kernels.max_tiles_of_two(xh, part.start, part.stop, with_mask, y, mask)
        else:
            geometry = window_geometry(kernel_size, stride, dilation, out_hw)

            def pool_part(part: slice) -> None:
                kernels.max_windows(xh, part.start, part.stop, geometry, with_mask, y, mask)
        self.run_parts(pool_part, self.batch_parts(n, (xh[0].size + y[0].size * (1 + len(mask))) * x.itemsize))
        return y.transpose(0, 3, 1, 2), mask

    def max_pool2d(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                   out_hw: tuple) -> Any:
        if not compiled_for(x):
            return super().max_pool2d(x, kernel_size, stride, padding, dilation, out_hw)
        return self._max_pool(x, kernel_size, stride, padding, dilation, out_hw, with_mask=False)[0]

    def max_pool2d_with_mask(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple,
                             out_hw: tuple) -> tuple:
        if not compiled_for(x):
            return super().max_pool2d_with_mask(x, kernel_size, stride, padding, dilation, out_hw)
        return self._max_pool(x, kernel_size, stride, padding, dilation, out_hw, with_mask=True)

    def _spread(self, gy: Any, mask: Any, in_shape: tuple, kernel_size: tuple, stride: tuple, padding: tuple,
                dilation: tuple) -> Any:
        """Each window's gradient sent to its elements (all of them, or with a mask its chosen one)."""
        gyh, n = channels_last(gy), in_shape[0]
        out = padded_image(in_shape, padding, gy.dtype)
        geometry = window_geometry(kernel_size, stride, dilation, gy.shape[2:])
        with_mask = mask is not None
        mask = mask if with_mask else np.empty((1, 1, 1, 1, 1), dtype=bool)
        self.run_parts(lambda part: kernels.spread_windows(gyh, mask, with_mask, part.start, part.stop, geometry, out),
                       self.batch_parts(n, (out[0].size + gyh[0].size * 2) * gy.itemsize))
        return cropped(out, in_shape, padding)

    def max_pool2d_scatter(self, gy: Any, mask: Any, in_shape: tuple, kernel_size: tuple, stride: tuple,
                           padding: tuple, dilation: tuple) -> Any:
        if not (compiled_for(gy) and mask.flags.c_contiguous):
            return super().max_pool2d_scatter(gy, mask, in_shape, kernel_size, stride, padding, dilation)
        return self._spread(gy, mask, in_shape, kernel_size, stride, padding, dilation)

    def max_pool2d_gather(self, x: Any, mask: Any, kernel_size: tuple, stride: tuple, padding: tuple,
                          dilation: tuple) -> Any:
        """Each window's chosen element of x (a create_graph backward through max pooling), in one
        compiled pass per part of the batch."""
        if not (compiled_for(x) and mask.flags.c_contiguous):
            return super().max_pool2d_gather(x, mask, kernel_size, stride, padding, dilation)
        xh, n = channels_last(x, padding), x.shape[0]
        y = np.empty(mask.shape[1:], dtype=x.dtype)
        geometry = window_geometry(kernel_size, stride, dilation, mask.shape[2:4])
        self.run_parts(lambda part: kernels.gather_chosen(xh, mask, part.start, part.stop, geometry, y),
                       self.batch_parts(n, (xh[0].size + y[0].size) * x.itemsize + mask[:, 0].size))
        return y.transpose(0, 3, 1, 2)

    def sum_pool2d(self, x: Any, kernel_size: tuple, stride: tuple, padding: tuple, out_hw: tuple) -> Any:
        if not compiled_for(x):
            return super().sum_pool2d(x, kernel_size, stride, padding, out_hw)
        xh, n = channels_last(x, padding), x.shape[0]
        y = np.empty((n,) + tuple(out_hw) + (x.shape[1],), dtype=x.dtype)
        geometry = window_geometry(kernel_size, stride, (1, 1), out_hw)
        self.run_parts(lambda part: kernels.sum_windows(xh, part.start, part.stop, geometry, y),
                       self.batch_parts(n, (xh[0].size + y[0].size) * x.itemsize))
        return y.transpose(0, 3, 1, 2)

    def sum_pool2d_spread(self, gy: Any, in_shape: tuple, kernel_size: tuple, stride: tuple,
                          padding: tuple) -> Any:
        if not compiled_for(gy):
            return super().sum_pool2d_spread(gy, in_shape, kernel_size, stride, padding)
        return self._spread(gy, None, in_shape, kernel_size, stride, padding, (1, 1))
