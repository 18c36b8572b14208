"""Pooling: max and average over windows (1-D and 2-D), global and adaptive pooling.

Each pooling op is linear once the chosen elements are known, so its backward is a
Function too (scatter for max, spread for average) whose own backward is the forward
again: double backward works and the renderer draws real ops.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .. import checks
from ..autograd import GRAD_OUT, Function
from ..errors import ShapeError, shape_str
from ..tensor import Tensor
from .conv import as_height_one, check_image, drop_height, pair
from .shape import concat

__all__ = ["adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "global_avg_pool2d", "global_max_pool2d",
           "max_pool1d", "max_pool2d"]


def _passed_on(ctx: Any, *names: str) -> dict:
    """The named settings a pooling node ran with, handed on unchanged to the op of its backward."""
    return {name: ctx.params[name] for name in names}


_WINDOW = ("kernel_size", "stride", "padding", "dilation")  # a max-pool window's settings


class MaxPool2d(Function):
    """y[n, c, i, j] = max over the window at (i, j) of x[n, c]"""
    saved_names = ("the max-pool mask",)
    rules = (f"∂L/∂x = {GRAD_OUT} routed to each window's largest element",)
    @staticmethod
    def forward(ctx, x, *, kernel_size, stride, padding, dilation, out_hw):
        ctx.in_shape = x.shape
        if not ctx.records:
            return ctx.backend.max_pool2d(x, kernel_size, stride, padding, dilation, out_hw)
        # Which element each window sends its gradient to, found now while x is in cache;
        # backward then reads neither x nor y.
        y, mask = ctx.backend.max_pool2d_with_mask(x, kernel_size, stride, padding, dilation, out_hw)
        ctx.save_for_backward(mask)
        return y

    @staticmethod
    def backward(ctx, gy):
        (mask,) = ctx.saved_tensors
        return MaxPool2dGrad.apply(gy, mask=mask.data, in_shape=ctx.in_shape, **_passed_on(ctx, *_WINDOW))


class MaxPool2dGrad(Function):
    """gx = gy sent to the first maximum of each window (max_pool2d's backward)"""
    @staticmethod
    def forward(ctx, gy, *, mask, in_shape, kernel_size, stride, padding, dilation):
        return ctx.backend.max_pool2d_scatter(gy, mask, in_shape, kernel_size, stride, padding, dilation)

    @staticmethod
    def backward(ctx, ggx):
        return MaxPool2dGather.apply(ggx, **_passed_on(ctx, "mask", *_WINDOW))


class MaxPool2dGather(Function):
    """y[n, c, i, j] = x at the element each window chose (MaxPool2dGrad's adjoint)"""
    @staticmethod
    def forward(ctx, x, *, mask, kernel_size, stride, padding, dilation):
        ctx.in_shape = x.shape
        return ctx.backend.max_pool2d_gather(x, mask, kernel_size, stride, padding, dilation)

    @staticmethod
    def backward(ctx, gy):
        return MaxPool2dGrad.apply(gy, in_shape=ctx.in_shape, **_passed_on(ctx, "mask", *_WINDOW))


_AVG_WINDOW = ("kernel_size", "stride", "padding", "counts")  # an average-pool window's settings


def _divisor(ctx: Any, counts: tuple, dtype: Any) -> Any:
    """The (OH, OW) window sizes that each average divides by."""
    rows, cols = counts
    return ctx.xp.asarray([[r * c for c in cols] for r in rows], dtype=dtype)


class AvgPool2d(Function):
    """y[n, c, i, j] = sum over the window at (i, j) of x[n, c] / its size"""
    rules = (f"∂L/∂x = {GRAD_OUT} / window size, spread over each window",)
    @staticmethod
    def forward(ctx, x, *, kernel_size, stride, padding, out_hw, counts):
        ctx.in_shape = x.shape
        y = ctx.backend.sum_pool2d(x, kernel_size, stride, padding, out_hw)
        y /= _divisor(ctx, counts, x.dtype)
        return y

    @staticmethod
    def backward(ctx, gy):
        return AvgPool2dGrad.apply(gy, in_shape=ctx.in_shape, **_passed_on(ctx, *_AVG_WINDOW))


class AvgPool2dGrad(Function):
    """gx = each window's gy / its size, added to every element of the window (avg_pool2d's backward)"""
    @staticmethod
    def forward(ctx, gy, *, in_shape, kernel_size, stride, padding, counts):
        ctx.out_hw = gy.shape[2:]
        g = gy / _divisor(ctx, counts, gy.dtype)
        return ctx.backend.sum_pool2d_spread(g, in_shape, kernel_size, stride, padding)

    @staticmethod
    def backward(ctx, ggx):
        return AvgPool2d.apply(ggx, out_hw=ctx.out_hw, **_passed_on(ctx, *_AVG_WINDOW))


# ---------------------------------------------------------------- geometry


def _pool_geometry(op: str, x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
                   ceil_mode: bool) -> tuple:
    """Kernel, stride, ((top, bottom), (left, right)) padding, dilation and output size of a 2-D pool.

    With ceil_mode the last window may hang over the bottom/right edge; the padding grows
    to hold it, and (as PyTorch) a window that would start in the padding is dropped.
    """
    checks.flag(op, "ceil_mode", ceil_mode)
    kernel = pair(op, "kernel_size", kernel_size)
    stride = kernel if stride is None else pair(op, "stride", stride)
    pads = pair(op, "padding", padding, minimum=0)
    dilation = pair(op, "dilation", dilation)
    out, padding = [], []
    for size, k, s, p, d in zip(x.shape[2:], kernel, stride, pads, dilation):
        span = d * (k - 1) + 1
        if p > span // 2:
            raise ShapeError(f"{op}: padding {pads} must be at most half the window {kernel} "
                             f"(dilation {dilation}): a window may not lie wholly in the padding")
        if span > size + 2 * p:
            raise ShapeError(f"{op}: the window {kernel} (dilation {dilation}) is larger than the padded "
                             f"input {shape_str(x.shape)} with padding {pads}; use a smaller kernel")
        n = math.ceil((size + 2 * p - span) / s) + 1 if ceil_mode else (size + 2 * p - span) // s + 1
        if ceil_mode and (n - 1) * s >= size + p:
            n -= 1
        out.append(n)
        padding.append((p, p + max(0, (n - 1) * s + span - size - 2 * p)))
    return kernel, stride, tuple(padding), dilation, tuple(out)


def _window_counts(size: int, n_out: int, k: int, s: int, p: int, include_pad: bool) -> list:
    """How many elements each window along one axis averages, as PyTorch counts them."""
    counts = []
    for i in range(n_out):
        start, end = i * s - p, min(i * s - p + k, size + p)
        if not include_pad:
            start, end = max(start, 0), min(end, size)
        counts.append(end - start)
    return counts


# ---------------------------------------------------------------- wrappers


def max_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False) -> Tensor:
    """The maximum of each window of x (N, C, H, W); stride defaults to the kernel size.

    The gradient of a window goes to its first maximum only, as in PyTorch.
    """
    x = check_image("max_pool2d", x)
    kernel, stride, padding, dilation, out_hw = _pool_geometry("max_pool2d", x, kernel_size, stride, padding,
                                                               dilation, ceil_mode)
    return MaxPool2d.apply(x, kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, out_hw=out_hw)


def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """The mean of each window of x (N, C, H, W); stride defaults to the kernel size.

    With ``count_include_pad`` the zeros of the padding count in the mean, as PyTorch.
    """
    x = check_image("avg_pool2d", x)
    checks.flag("avg_pool2d", "count_include_pad", count_include_pad)
    kernel, stride, padding, _, out_hw = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    counts = tuple(_window_counts(size, n, k, s, p, count_include_pad)
                   for size, n, k, s, (p, _) in zip(x.shape[2:], out_hw, kernel, stride, padding))
    return AvgPool2d.apply(x, kernel_size=kernel, stride=stride, padding=padding, out_hw=out_hw, counts=counts)


def _single(op: str, name: str, value: Any, minimum: int = 1) -> int:
    """An int (or a 1-tuple of one) at least ``minimum``: a 1-D pool's setting."""
    return checks.ints(op, name, value, 1, minimum)[0]


def _pool1d(op: str, pool2d: Callable, x: Tensor, kernel_size: Any, stride: Any, padding: Any,
            **options: Any) -> Tensor:
    """A 1-D pool of x (N, C, W): the 2-D one on a height-1 image."""
    k = _single(op, "kernel_size", kernel_size)
    s = k if stride is None else _single(op, "stride", stride)
    y = pool2d(as_height_one(op, x), (1, k), (1, s), (0, _single(op, "padding", padding, 0)), **options)
    return drop_height(y)


def max_pool1d(x: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0, dilation: int = 1,
               ceil_mode: bool = False) -> Tensor:
    """The maximum of each window of x (N, C, W)."""
    return _pool1d("max_pool1d", max_pool2d, x, kernel_size, stride, padding,
                   dilation=(1, _single("max_pool1d", "dilation", dilation)), ceil_mode=ceil_mode)


def avg_pool1d(x: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """The mean of each window of x (N, C, W)."""
    return _pool1d("avg_pool1d", avg_pool2d, x, kernel_size, stride, padding, ceil_mode=ceil_mode,
                   count_include_pad=count_include_pad)


def global_avg_pool2d(x: Tensor) -> Tensor:
    """The mean of each channel over the whole image: (N, C, H, W) to (N, C)."""
    return check_image("global_avg_pool2d", x).mean(axis=(2, 3))


def global_max_pool2d(x: Tensor) -> Tensor:
    """The maximum of each channel over the whole image: (N, C, H, W) to (N, C)."""
    return check_image("global_max_pool2d", x).max(axis=(2, 3))


def _adaptive_axis(x: Tensor, axis: int, n_out: int) -> Tensor:
    """The mean of each of ``n_out`` windows along ``axis``: window i is
    [floor(i * size / n_out), ceil((i + 1) * size / n_out)). Slices, not an averaging matrix:
    in a matrix product 0 * NaN would spread a NaN into every window of its row."""
    size, parts = x.shape[axis], []
    for i in range(n_out):
        window = [slice(None)] * x.ndim
        window[axis] = slice((i * size) // n_out, -((-(i + 1) * size) // n_out))
        parts.append(x[tuple(window)].mean(axis=axis, keepdims=True))
    return concat(parts, axis=axis)


def adaptive_avg_pool2d(x: Tensor, output_size: Any) -> Tensor:
    """Average pooling to a fixed (OH, OW) whatever the input size, with PyTorch's windows."""
    op = "adaptive_avg_pool2d"
    x = check_image(op, x)
    oh, ow = pair(op, "output_size", output_size)
    h, w = x.shape[2:]
    if not h or not w:
        raise ShapeError(f"{op}: cannot pool an empty image, got input {shape_str(x.shape)}")
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(x, (h // oh, w // ow))
    # Windows of unequal size: each a rectangle, so its mean is the mean over its rows, then columns.
    return _adaptive_axis(_adaptive_axis(x, 2, oh), 3, ow)
