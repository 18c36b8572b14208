"""Reductions over axes (sum, mean, max, min, var, a bias's channel sum), argmax and argmin.

The broadcast/un-broadcast pair (``sum_to``, ``broadcast_to``) is the engine's own and lives
in ``autograd.py``; it is re-exported here with the other reductions."""
from __future__ import annotations

import builtins
from typing import Any

from ..autograd import GRAD_OUT, BroadcastTo, Function, SumTo, broadcast_to, sum_to  # noqa: F401  (the engine's pair)
from ..errors import ShapeError, shape_str


def _axes(op: str, axis: Any, ndim: int) -> tuple:
    """Normalise None, an int or a tuple to a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ShapeError(f"{op}: axis {a} is out of range for a tensor of {ndim} dimensions")
        out.append(a % builtins.max(ndim, 1))
    return tuple(sorted(set(out)))


def _kept_shape(shape: tuple, axes: tuple) -> tuple:
    """The shape a reduction over ``axes`` has with keepdims=True."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    """y = sum of a over axes"""
    rules = (f"∂L/∂a = {GRAD_OUT} copied to every summed element",)
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.axes = _axes("Sum", axis, a.ndim)
        ctx.in_shape = a.shape
        return a.sum(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, gy):
        return broadcast_to(gy.reshape(_kept_shape(ctx.in_shape, ctx.axes)), ctx.in_shape)


class Mean(Function):
    """y = mean of a over axes"""
    rules = (f"∂L/∂a = {GRAD_OUT} / n, copied to every element",)
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.axes = _axes("Mean", axis, a.ndim)
        ctx.in_shape = a.shape
        ctx.count = 1
        for i in ctx.axes:
            ctx.count *= a.shape[i]
        return a.mean(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, gy):
        g = gy.reshape(_kept_shape(ctx.in_shape, ctx.axes)) / ctx.count
        return broadcast_to(g, ctx.in_shape)


class Max(Function):
    """y = max of a over axes; tied maxima share the gradient equally"""
    saved_names = ("the mask of the largest elements",)
    rules = (f"∂L/∂a = {GRAD_OUT} at the largest elements (ties share), 0 elsewhere",)
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.axes = _axes("Max", axis, a.ndim)
        _check_nonempty("Max", a, ctx.axes)
        y = a.max(axis=ctx.axes, keepdims=True)
        ctx.save_for_backward(a == y)
        return y if keepdims else y.reshape([n for i, n in enumerate(a.shape) if i not in ctx.axes])

    @staticmethod
    def backward(ctx, gy):
        return _spread_to_extremes(ctx, gy)


class Min(Function):
    """y = min of a over axes; tied minima share the gradient equally"""
    saved_names = ("the mask of the smallest elements",)
    rules = (f"∂L/∂a = {GRAD_OUT} at the smallest elements (ties share), 0 elsewhere",)
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.axes = _axes("Min", axis, a.ndim)
        _check_nonempty("Min", a, ctx.axes)
        y = a.min(axis=ctx.axes, keepdims=True)
        ctx.save_for_backward(a == y)
        return y if keepdims else y.reshape([n for i, n in enumerate(a.shape) if i not in ctx.axes])

    @staticmethod
    def backward(ctx, gy):
        return _spread_to_extremes(ctx, gy)


def _check_nonempty(op: str, a: Any, axes: tuple) -> None:
    if any(a.shape[i] == 0 for i in axes):
        raise ShapeError(f"{op}: cannot reduce an empty axis of shape {shape_str(a.shape)}")


def _spread_to_extremes(ctx: Any, gy: Any) -> Any:
    (mask,) = ctx.saved_tensors
    mask = mask.astype(gy.dtype)
    count = mask.sum(axis=ctx.axes, keepdims=True)
    return gy.reshape(_kept_shape(mask.shape, ctx.axes)) * mask / count


class Var(Function):
    """y = sum((a - mean a)^2) / (n - ddof) over axes"""
    rules = (f"∂L/∂a = {GRAD_OUT} · 2(a − mean a) / (n − ddof)",)
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False, ddof=0):
        ctx.axes = _axes("Var", axis, a.ndim)
        ctx.count = 1
        for i in ctx.axes:
            ctx.count *= a.shape[i]
        if ctx.count - ddof <= 0:
            raise ShapeError(f"Var: {ctx.count} elements with ddof={ddof} leave no degrees of freedom")
        ctx.ddof = ddof
        ctx.save_for_backward(a)
        return a.var(axis=ctx.axes, keepdims=keepdims, ddof=ddof)

    @staticmethod
    def backward(ctx, gy):
        (a,) = ctx.saved_tensors
        centered = a - a.mean(axis=ctx.axes, keepdims=True)
        g = gy.reshape(_kept_shape(a.shape, ctx.axes))
        return g * centered * (2.0 / (ctx.count - ctx.ddof))


class ChannelSum(Function):
    """y[c] = the sum of x[:, c, ...] over every other axis (a bias's gradient: a conv's over
    (N, H, W), a linear layer's over the batch's rows)"""
    @staticmethod
    def forward(ctx, x):
        ctx.in_shape = x.shape
        return ctx.backend.channel_sum(x)

    @staticmethod
    def backward(ctx, gy):
        return broadcast_to(gy.reshape((1, -1) + (1,) * (len(ctx.in_shape) - 2)), ctx.in_shape)


class ArgMax(Function):
    """index of the largest element along an axis; no gradient"""
    differentiable = False

    @staticmethod
    def forward(ctx, a, axis=None):
        if axis is not None:
            _axes("ArgMax", axis, a.ndim)  # names the op and the axis when out of range
        return a.argmax(axis=axis)

    @staticmethod
    def backward(ctx, gy):
        return None


class ArgMin(Function):
    """index of the smallest element along an axis; no gradient"""
    differentiable = False

    @staticmethod
    def forward(ctx, a, axis=None):
        if axis is not None:
            _axes("ArgMin", axis, a.ndim)  # names the op and the axis when out of range
        return a.argmin(axis=axis)

    @staticmethod
    def backward(ctx, gy):
        return None


def sum(a: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum over ``axis`` (None: all, an int, or a tuple)."""
    return Sum.apply(a, axis=axis, keepdims=keepdims)


def mean(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return Mean.apply(a, axis=axis, keepdims=keepdims)


def max(a: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    return Max.apply(a, axis=axis, keepdims=keepdims)


def min(a: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    return Min.apply(a, axis=axis, keepdims=keepdims)


def var(a: Any, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Any:
    """Variance; ddof=0 is NumPy's population variance."""
    return Var.apply(a, axis=axis, keepdims=keepdims, ddof=ddof)


def argmax(a: Any, axis: int | None = None) -> Any:
    return ArgMax.apply(a, axis=axis)


def argmin(a: Any, axis: int | None = None) -> Any:
    return ArgMin.apply(a, axis=axis)

