"""Elementwise arithmetic with broadcasting. The engine sums broadcast gradients back."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..autograd import GRAD_OUT, Function
from ..errors import ShapeError, shape_str
from ..tensor import Tensor

# add, sub, mul, ... and compare stay out of F: Tensor's operators call them.
__all__ = ["abs", "exp", "log", "maximum", "minimum", "sqrt", "where"]


def _check_broadcast(op: str, a: Any, b: Any) -> None:
    """Name the op and both shapes, instead of NumPy's own broadcasting message."""
    if a.shape == b.shape or a.ndim == 0 or b.ndim == 0:
        return  # the common cases, checked first because every binary op passes here
    for x, y in zip(reversed(a.shape), reversed(b.shape)):
        if x != y and x != 1 and y != 1:
            raise ShapeError(f"{op}: shapes {shape_str(a.shape)} and {shape_str(b.shape)} do "
                             "not broadcast; each trailing dimension must match or be 1")


def float_values(a: Any) -> Any:
    """``a`` if it holds floats, else ``a`` as float32: exp, log, sigmoid and the like of integers
    are not integers (PyTorch gives float32 too; NumPy would give float16 for int8, and an
    integer erf would cut its values to 0)."""
    return a if a.dtype.kind in "fc" else a.astype(np.float32)


def _operands(op: str, a: Any, b: Any, divide: bool = False) -> tuple:
    """a and b checked to broadcast, and cast where PyTorch's type promotion differs from
    NumPy's: an integer or bool array meeting a float one takes that float's dtype (int64 *
    float32 is float32, where NumPy gives float64), and true division of two integer arrays
    runs in float32, PyTorch's default float type (NumPy: float64)."""
    _check_broadcast(op, a, b)
    if a.dtype is b.dtype and (not divide or a.dtype.kind == "f"):
        return a, b  # the common case: one dtype
    a_float, b_float = a.dtype.kind == "f", b.dtype.kind == "f"
    if a_float and not b_float:
        return a, b.astype(a.dtype)
    if b_float and not a_float:
        return a.astype(b.dtype), b
    if divide and not a_float:
        return a.astype(np.float32), b.astype(np.float32)
    return a, b


class Add(Function):
    """y = a + b"""
    rules = (f"∂L/∂a = {GRAD_OUT}", f"∂L/∂b = {GRAD_OUT}")
    @staticmethod
    def forward(ctx, a, b):
        a, b = _operands("Add", a, b)
        return a + b

    @staticmethod
    def backward(ctx, gy):
        return gy, gy


class Sub(Function):
    """y = a - b"""
    rules = (f"∂L/∂a = {GRAD_OUT}", f"∂L/∂b = −{GRAD_OUT}")
    @staticmethod
    def forward(ctx, a, b):
        a, b = _operands("Sub", a, b)
        return a - b

    @staticmethod
    def backward(ctx, gy):
        return gy, -gy


class Mul(Function):
    """y = a * b"""
    rules = (f"∂L/∂a = {GRAD_OUT} · b", f"∂L/∂b = {GRAD_OUT} · a")
    @staticmethod
    def forward(ctx, a, b):
        a, b = _operands("Mul", a, b)
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        return gy * b, gy * a


class Div(Function):
    """y = a / b"""
    rules = (f"∂L/∂a = {GRAD_OUT} / b", f"∂L/∂b = −{GRAD_OUT} · a / b²")
    @staticmethod
    def forward(ctx, a, b):
        a, b = _operands("Div", a, b, divide=True)
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        ga = gy / b
        return ga, -ga * a / b


class Pow(Function):
    """y = a ** b"""
    rules = (f"∂L/∂a = {GRAD_OUT} · b · a^(b−1)", f"∂L/∂b = {GRAD_OUT} · y · ln a")
    @staticmethod
    def forward(ctx, a, b):
        a, b = _operands("Pow", a, b)
        y = a ** b
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        a, b, y = ctx.saved_tensors
        ga = gy * b * a ** (b - 1) if ctx.needs_input_grad[0] else None
        # d(a^b)/db = a^b log a, defined where a > 0; elsewhere 0 as in PyTorch's mask.
        gb = gy * y * log(where(a > 0, a, 1)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """y = -a"""
    rules = (f"∂L/∂a = −{GRAD_OUT}",)
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, gy):
        return -gy


class Exp(Function):
    """y = e^a"""
    rules = (f"∂L/∂a = {GRAD_OUT} · y",)
    @staticmethod
    def forward(ctx, a):
        y = ctx.xp.exp(float_values(a))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * y


class Log(Function):
    """y = ln a"""
    rules = (f"∂L/∂a = {GRAD_OUT} / a",)
    @staticmethod
    def forward(ctx, a):
        a = float_values(a)
        ctx.save_for_backward(a)
        return ctx.xp.log(a)

    @staticmethod
    def backward(ctx, gy):
        (a,) = ctx.saved_tensors
        return gy / a


class Sqrt(Function):
    """y = sqrt(a)"""
    rules = (f"∂L/∂a = {GRAD_OUT} / (2y)",)
    @staticmethod
    def forward(ctx, a):
        y = ctx.xp.sqrt(float_values(a))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy / (2 * y)


class Abs(Function):
    """y = |a|"""
    rules = (f"∂L/∂a = {GRAD_OUT} · sign(a)",)
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return ctx.xp.abs(a)

    @staticmethod
    def backward(ctx, gy):
        (a,) = ctx.saved_tensors
        return gy * sign(a)


class Sign(Function):
    """y = sign(a); zero gradient almost everywhere"""
    differentiable = False

    @staticmethod
    def forward(ctx, a):
        return ctx.xp.sign(a)

    @staticmethod
    def backward(ctx, gy):
        return gy * 0


class Where(Function):
    """y = a where cond else b (cond gets no gradient)"""
    rules = ("cond gets no gradient",
             f"∂L/∂a = {GRAD_OUT} where cond, else 0",
             f"∂L/∂b = {GRAD_OUT} where not cond, else 0")
    @staticmethod
    def forward(ctx, cond, a, b):
        if not (cond.shape == a.shape == b.shape):
            try:
                np.broadcast_shapes(cond.shape, a.shape, b.shape)  # shapes only: host tuples
            except ValueError:
                raise ShapeError(f"Where: condition {shape_str(cond.shape)}, a {shape_str(a.shape)} and "
                                 f"b {shape_str(b.shape)} do not broadcast to one shape") from None
        ctx.save_for_backward(cond)
        return ctx.xp.where(cond, a, b)

    @staticmethod
    def backward(ctx, gy):
        (cond,) = ctx.saved_tensors
        zero = gy * 0
        return None, where(cond, gy, zero), where(cond, zero, gy)


class _Pick(Function):
    """Maximum and Minimum, which differ only in ``pick``: y = a or b elementwise, whichever
    ``pick`` chooses; a tie sends the gradient to a."""
    pick: str  # the array function that chooses: "maximum" or "minimum"

    @staticmethod
    def forward(ctx, a, b):
        a, b = _operands(ctx.name, a, b)
        y = getattr(ctx.xp, ctx.fn.pick)(a, b)
        ctx.save_for_backward(a == y)  # where a was chosen: a ≥ b for Maximum, a ≤ b for Minimum
        return y

    @staticmethod
    def backward(ctx, gy):
        (pick_a,) = ctx.saved_tensors
        zero = gy * 0
        return where(pick_a, gy, zero), where(pick_a, zero, gy)


class Maximum(_Pick):
    """y = max(a, b) elementwise; a tie sends the gradient to a"""
    saved_names = ("the mask [a ≥ b]",)
    rules = (f"∂L/∂a = {GRAD_OUT} where a ≥ b, else 0", f"∂L/∂b = {GRAD_OUT} where a < b, else 0")
    pick = "maximum"


class Minimum(_Pick):
    """y = min(a, b) elementwise; a tie sends the gradient to a"""
    saved_names = ("the mask [a ≤ b]",)
    rules = (f"∂L/∂a = {GRAD_OUT} where a ≤ b, else 0", f"∂L/∂b = {GRAD_OUT} where a > b, else 0")
    pick = "minimum"


class AsType(Function):
    """y = a converted to another float dtype"""
    rules = (f"∂L/∂a = {GRAD_OUT} cast back to a's dtype",)
    @staticmethod
    def forward(ctx, a, *, dtype):
        ctx.dtype_in = a.dtype
        return a.astype(dtype, copy=False)

    @staticmethod
    def backward(ctx, gy):
        return astype(gy, ctx.dtype_in)


_COMPARE = {"eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal",
            "gt": "greater", "ge": "greater_equal"}


class Compare(Function):
    """y = a <op> b as booleans; no gradient"""
    differentiable = False

    @staticmethod
    def forward(ctx, a, b, *, how):
        _check_broadcast("Compare", a, b)
        return getattr(ctx.xp, _COMPARE[how])(a, b)

    @staticmethod
    def backward(ctx, gy):
        return None, None


def add(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    return Add.apply(a, b)


def sub(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    return Sub.apply(a, b)


def mul(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    return Mul.apply(a, b)


def div(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    return Div.apply(a, b)


def pow(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:  # noqa: A001 (the operator's own name)
    return Pow.apply(a, b)


def neg(a: Tensor) -> Tensor:
    return Neg.apply(a)


def exp(a: Tensor) -> Tensor:
    return Exp.apply(a)


def log(a: Tensor) -> Tensor:
    return Log.apply(a)


def sqrt(a: Tensor) -> Tensor:
    return Sqrt.apply(a)


def abs(a: Tensor) -> Tensor:  # noqa: A001
    return Abs.apply(a)


def sign(a: Tensor) -> Tensor:
    return Sign.apply(a)


def where(cond: Tensor | ArrayLike, a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    """Elements of ``a`` where ``cond`` holds, else of ``b`` (broadcasting all three)."""
    return Where.apply(cond, a, b)


def maximum(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    return Maximum.apply(a, b)


def minimum(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    return Minimum.apply(a, b)


def astype(a: Tensor, dtype: Any) -> Tensor:
    return AsType.apply(a, dtype=dtype)


def compare(a: Tensor, b: Tensor | ArrayLike, how: str) -> Tensor:
    return Compare.apply(a, b, how=how)

