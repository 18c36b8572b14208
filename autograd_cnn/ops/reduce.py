"""Reductions over axes (sum, mean, max, min, var, a bias's channel sum), argmax and argmin.

The broadcast/un-broadcast pair (``sum_to``, ``broadcast_to``) is the engine's own and lives
in ``autograd.py``; it is re-exported here with the other reductions."""
from __future__ import annotations

import builtins
import math
from typing import Any

from .. import checks
from ..autograd import GRAD_OUT, BroadcastTo, Function, SumTo, broadcast_to, sum_to  # noqa: F401  (the engine's pair)
from ..errors import ArgumentTypeError, ShapeError, shape_str
from ..tensor import Tensor

__all__ = ["max", "mean", "min", "sum", "var"]  # argmax and argmin are Tensor methods


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
    if len(set(out)) != len(out):  # as NumPy and PyTorch: a typo, not a wish to reduce twice
        raise ShapeError(f"{op}: axis {axis!r} names an axis twice")
    return tuple(sorted(out))


def _kept_shape(shape: tuple, axes: tuple) -> tuple:
    """The shape a reduction over ``axes`` has with keepdims=True."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    """y = sum of a over axes"""
    rules = (f"∂L/∂a = {GRAD_OUT} copied to every summed element",)
    @staticmethod
    def forward(ctx, a, *, axis, keepdims):
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
    def forward(ctx, a, *, axis, keepdims):
        ctx.axes = _axes("Mean", axis, a.ndim)
        ctx.in_shape = a.shape
        ctx.count = math.prod(a.shape[i] for i in ctx.axes)
        return a.mean(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, gy):
        g = gy.reshape(_kept_shape(ctx.in_shape, ctx.axes)) / ctx.count
        return broadcast_to(g, ctx.in_shape)


class _Extreme(Function):
    """Max and Min, which differ only in ``pick``: y = the extreme of a over axes; tied
    extremes share the gradient equally."""
    pick: str  # the array method that finds the extreme: "max" or "min"

    @staticmethod
    def forward(ctx, a, *, axis, keepdims):
        ctx.axes = axes = _axes(ctx.name, axis, a.ndim)
        if any(a.shape[i] == 0 for i in axes):
            raise ShapeError(f"{ctx.name}: cannot reduce an empty axis of shape {shape_str(a.shape)}")
        y = getattr(a, ctx.fn.pick)(axis=axes, keepdims=True)
        ctx.save_for_backward(a == y)  # the extremes: ties included
        return y if keepdims else y.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    @staticmethod
    def backward(ctx, gy):
        (is_extreme,) = ctx.saved_tensors
        mask = is_extreme.astype(gy.dtype)
        count = mask.sum(axis=ctx.axes, keepdims=True)
        return gy.reshape(_kept_shape(mask.shape, ctx.axes)) * mask / count


class Max(_Extreme):
    """y = max of a over axes; tied maxima share the gradient equally"""
    saved_names = ("the mask of the largest elements",)
    rules = (f"∂L/∂a = {GRAD_OUT} at the largest elements (ties share), 0 elsewhere",)
    pick = "max"


class Min(_Extreme):
    """y = min of a over axes; tied minima share the gradient equally"""
    saved_names = ("the mask of the smallest elements",)
    rules = (f"∂L/∂a = {GRAD_OUT} at the smallest elements (ties share), 0 elsewhere",)
    pick = "min"


class Var(Function):
    """y = sum((a - mean a)^2) / (n - ddof) over axes"""
    rules = (f"∂L/∂a = {GRAD_OUT} · 2(a − mean a) / (n − ddof)",)
    @staticmethod
    def forward(ctx, a, *, axis, keepdims, ddof):
        ctx.axes = _axes("Var", axis, a.ndim)
        ctx.count = math.prod(a.shape[i] for i in ctx.axes)
        if ctx.count - ddof <= 0:
            raise ShapeError(f"Var: {ctx.count} elements with ddof={ddof} leave no degrees of freedom")
        ctx.save_for_backward(a)
        return a.var(axis=ctx.axes, keepdims=keepdims, ddof=ddof)

    @staticmethod
    def backward(ctx, gy):
        (a,) = ctx.saved_tensors
        centered = a - a.mean(axis=ctx.axes, keepdims=True)
        g = gy.reshape(_kept_shape(a.shape, ctx.axes))
        return g * centered * (2.0 / (ctx.count - ctx.params["ddof"]))


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


class _ArgExtreme(Function):
    """ArgMax and ArgMin, which differ only in ``pick``: the index of the extreme along an
    axis; no gradient."""
    differentiable = False
    pick: str  # the array method: "argmax" or "argmin"

    @staticmethod
    def forward(ctx, a, *, axis):
        if axis is not None:
            _axes(ctx.name, axis, a.ndim)  # names the op and the axis when out of range
        return getattr(a, ctx.fn.pick)(axis=axis)

    @staticmethod
    def backward(ctx, gy):
        return None


class ArgMax(_ArgExtreme):
    """index of the largest element along an axis; no gradient"""
    pick = "argmax"


class ArgMin(_ArgExtreme):
    """index of the smallest element along an axis; no gradient"""
    pick = "argmin"


def _axis_arg(op: str, axis: Any, many: bool = True) -> Any:
    """None, an int, or (where ``many``) a tuple or list of ints; never a bool or a float."""
    if axis is None or checks.is_int(axis):
        return None if axis is None else int(axis)
    if many and isinstance(axis, (tuple, list)) and all(checks.is_int(a) for a in axis):
        return tuple(int(a) for a in axis)
    allowed = "None, an int or a tuple of ints" if many else "None or an int"
    raise ArgumentTypeError(f"{op}: axis must be {allowed}, got {axis!r}")


def sum(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (None: all, an int, or a tuple)."""
    return Sum.apply(a, axis=_axis_arg("sum", axis), keepdims=checks.flag("sum", "keepdims", keepdims))


def mean(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    return Mean.apply(a, axis=_axis_arg("mean", axis), keepdims=checks.flag("mean", "keepdims", keepdims))


def max(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return Max.apply(a, axis=_axis_arg("max", axis), keepdims=checks.flag("max", "keepdims", keepdims))


def min(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return Min.apply(a, axis=_axis_arg("min", axis), keepdims=checks.flag("min", "keepdims", keepdims))


def var(a: Tensor, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance; ddof=0 is NumPy's population variance."""
    return Var.apply(a, axis=_axis_arg("var", axis), keepdims=checks.flag("var", "keepdims", keepdims),
                     ddof=checks.integer("var", "ddof", ddof, 0))


def argmax(a: Tensor, axis: int | None = None) -> Tensor:
    return ArgMax.apply(a, axis=_axis_arg("argmax", axis, many=False))


def argmin(a: Tensor, axis: int | None = None) -> Tensor:
    return ArgMin.apply(a, axis=_axis_arg("argmin", axis, many=False))

