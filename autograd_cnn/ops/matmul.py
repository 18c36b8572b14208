"""Matrix products: matmul with NumPy's rules (batched, 1-D promoted) and linear."""
from __future__ import annotations

from typing import Any

from numpy.typing import ArrayLike

from ..autograd import GRAD_OUT, Function
from ..errors import ShapeError, shape_str
from ..tensor import Tensor
from .reduce import ChannelSum, sum_to

__all__ = ["linear", "matmul"]


def _swap_last(t: Any) -> Any:
    axes = tuple(range(t.ndim - 2)) + (t.ndim - 1, t.ndim - 2)
    return t.transpose(axes)


class MatMul(Function):
    """y = a @ b"""
    rules = (f"∂L/∂a = {GRAD_OUT} @ bᵀ", f"∂L/∂b = aᵀ @ {GRAD_OUT}")
    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"MatMul: needs at least 1-D inputs, got {shape_str(a.shape)} @ "
                             f"{shape_str(b.shape)}; use * for scalars")
        k_a = a.shape[-1]
        k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if k_a != k_b:
            raise ShapeError(f"MatMul: {shape_str(a.shape)} @ {shape_str(b.shape)}: inner "
                             f"dimensions {k_a} and {k_b} differ")
        ctx.save_for_backward(a, b)
        return ctx.backend.matmul(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        # Promote 1-D operands to matrices as NumPy does, then undo it on the gradients.
        a2 = a.reshape((1, a.shape[0])) if a.ndim == 1 else a
        b2 = b.reshape((b.shape[0], 1)) if b.ndim == 1 else b
        g = gy
        if a.ndim == 1:
            g = g.reshape(g.shape[:-1] + (1,) + g.shape[-1:]) if b.ndim > 1 else g.reshape(g.shape + (1,))
        if b.ndim == 1:
            g = g.reshape(g.shape + (1,))
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = sum_to(g @ _swap_last(b2), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = sum_to(_swap_last(a2) @ g, b2.shape).reshape(b.shape)
        return ga, gb


class Linear(Function):
    """y = x @ weight.T + bias, weight shaped (out, in)"""
    rules = (f"∂L/∂x = {GRAD_OUT} @ W", f"∂L/∂W = {GRAD_OUT}ᵀ @ x", f"∂L/∂bias = Σₙ {GRAD_OUT}")
    @staticmethod
    def forward(ctx, x, weight, bias=None):
        if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
            raise ShapeError(f"Linear: input {shape_str(x.shape)} does not fit weight "
                             f"{shape_str(weight.shape)} (out_features, in_features): the input's "
                             f"last dimension must be {weight.shape[-1] if weight.ndim == 2 else '?'}")
        ctx.save_for_backward(x, weight)
        y = ctx.backend.matmul(x, weight.T)
        if bias is not None:
            y += bias
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        gx = gy @ weight if ctx.needs_input_grad[0] else None
        # Rows of a batch of any shape; a 2-D batch (the usual case) needs no reshape op.
        g2 = gy if gy.ndim == 2 else gy.reshape((-1, gy.shape[-1]))
        gw = None
        if ctx.needs_input_grad[1]:
            gw = g2.T @ (x if x.ndim == 2 else x.reshape((-1, x.shape[-1])))
        if len(ctx.needs_input_grad) == 2:
            return gx, gw
        gb = ChannelSum.apply(g2) if ctx.needs_input_grad[2] else None
        return gx, gw, gb


def matmul(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    """Matrix product with NumPy's broadcasting and 1-D rules."""
    return MatMul.apply(a, b)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` with weight shaped (out_features, in_features)."""
    if bias is None:
        return Linear.apply(x, weight)
    return Linear.apply(x, weight, bias)
