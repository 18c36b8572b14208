"""The engine's own pair of ops: backward sums each broadcast gradient back to its input's shape
(``SumTo``), so that no binary op's backward handles broadcasting itself."""
from __future__ import annotations

from ..errors import ShapeError, shape_str
from ..tensor import Tensor
from .function import GRAD_OUT, Function


class SumTo(Function):
    """y = a summed over broadcast axes down to ``shape`` (un-broadcasting)"""
    rules = (f"∂L/∂a = {GRAD_OUT} copied along the summed axes",)

    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        lead = a.ndim - len(shape)
        if lead < 0:
            raise ShapeError(f"SumTo: cannot sum {shape_str(a.shape)} to the larger {shape_str(shape)}")
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(shape) if n == 1 and a.shape[lead + i] != 1)
        y = a.sum(axis=axes, keepdims=True) if axes else a
        return y.reshape(shape)

    @staticmethod
    def backward(ctx, gy):
        return broadcast_to(gy, ctx.in_shape)


class BroadcastTo(Function):
    """y = a repeated along broadcast axes up to ``shape``"""
    rules = (f"∂L/∂a = {GRAD_OUT} summed over the broadcast axes",)

    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        return ctx.xp.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, gy):
        return sum_to(gy, ctx.in_shape)


def sum_to(a: Tensor, shape: tuple) -> Tensor:
    """Sum a broadcast result back to ``shape``: the engine's un-broadcasting step."""
    return SumTo.apply(a, shape=tuple(shape))


def broadcast_to(a: Tensor, shape: tuple) -> Tensor:
    """``a`` repeated along new or size-1 axes up to ``shape`` (a view, no copy)."""
    return BroadcastTo.apply(a, shape=tuple(shape))
