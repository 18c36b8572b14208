"""Activations and the softmax family (numerically stable)."""
from __future__ import annotations

import math
from typing import Any

from .. import checks
from ..autograd import GRAD_OUT, Function
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, shape_str
from ..tensor import Tensor
from .elementwise import exp, float_values, where

__all__ = ["erf", "gelu", "leaky_relu", "log_softmax", "relu", "sigmoid", "softmax", "softplus", "tanh"]


class ReLU(Function):
    """y = max(x, 0)"""
    saved_names = ("the ReLU mask [x > 0]",)
    rules = (f"∂L/∂x = {GRAD_OUT} · [y > 0]",)
    @staticmethod
    def forward(ctx, x):
        if not ctx.records:
            return ctx.xp.maximum(x, 0)
        # A boolean mask is all backward needs (and a quarter of float32's memory).
        y, positive = ctx.backend.relu_with_mask(x)
        ctx.save_for_backward(positive)
        return y

    @staticmethod
    def backward(ctx, gy):
        (positive,) = ctx.saved_tensors
        return ReLUGrad.apply(gy, positive)


class ReLUGrad(Function):
    """gx = gy * [x > 0]: ReLU's backward as one op, in the mask's memory layout"""
    rules = (f"∂L/∂gy = {GRAD_OUT} · [x > 0]", "the mask gets no gradient")
    @staticmethod
    def forward(ctx, gy, positive):
        return ctx.backend.relu_grad(gy, positive)

    @staticmethod
    def backward(ctx, g):
        return ReLUGrad.apply(g, ctx.inputs[1]), None


class LeakyReLU(Function):
    """y = x if x > 0 else slope * x"""
    rules = (f"∂L/∂x = {GRAD_OUT} · (1 if x > 0 else slope)",)
    @staticmethod
    def forward(ctx, x, *, negative_slope):
        x = float_values(x)  # an integer slope times x would round to 0
        ctx.save_for_backward(x)
        return ctx.xp.where(x > 0, x, x * x.dtype.type(negative_slope))

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return where(x > 0, gy, gy * ctx.params["negative_slope"])


class _GradInY(Function):
    """SigmoidGrad and TanhGrad, which differ only in ``slope``: gx = gy * slope(y), an
    activation's backward as one op, where slope is its dy/dx written in its output y (and
    ``dslope`` is d slope / dy, for this op's own backward)."""

    @staticmethod
    def slope(y):
        raise NotImplementedError

    @staticmethod
    def dslope(y):
        raise NotImplementedError

    @staticmethod
    def forward(ctx, gy, y):
        ctx.save_for_backward(gy, y)
        return gy * ctx.fn.slope(y)

    @staticmethod
    def backward(ctx, g):
        gy, y = ctx.saved_tensors
        return g * ctx.fn.slope(y), g * gy * ctx.fn.dslope(y)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x)"""
    rules = (f"∂L/∂x = {GRAD_OUT} · y(1 − y)",)
    @staticmethod
    def forward(ctx, x):
        xp, x = ctx.xp, float_values(x)
        # exp of a non-positive number never overflows: split by sign.
        z = xp.exp(-xp.abs(x))
        y = xp.where(x >= 0, 1 / (1 + z), z / (1 + z))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return SigmoidGrad.apply(gy, y)


class SigmoidGrad(_GradInY):
    """gx = gy * y * (1 - y): sigmoid's backward as one op (one pass, not four)"""
    @staticmethod
    def slope(y):
        return y * (1 - y)

    @staticmethod
    def dslope(y):
        return 1 - 2 * y


class Tanh(Function):
    """y = tanh x"""
    rules = (f"∂L/∂x = {GRAD_OUT} · (1 − y²)",)
    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.tanh(float_values(x))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return TanhGrad.apply(gy, y)


class TanhGrad(_GradInY):
    """gx = gy * (1 - y^2): tanh's backward as one op (one pass, not three)"""
    @staticmethod
    def slope(y):
        return 1 - y * y

    @staticmethod
    def dslope(y):
        return -2 * y


class Softplus(Function):
    """y = log(1 + e^(beta x)) / beta, and y = x where beta x > threshold"""
    rules = (f"∂L/∂x = {GRAD_OUT} · sigmoid(β·x), or {GRAD_OUT} where β·x > threshold",)
    @staticmethod
    def forward(ctx, x, *, beta, threshold):
        xp, x = ctx.xp, float_values(x)
        z = x * beta
        # log(1 + e^z) = max(z, 0) + log(1 + e^-|z|): exp never sees a positive number, so never overflows.
        y = (xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))) / beta
        ctx.save_for_backward(x)
        return xp.where(z > threshold, x, y)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        z = x * ctx.params["beta"]
        return gy * where(z > ctx.params["threshold"], 1.0, sigmoid(z))


class Gelu(Function):
    """y = x * Phi(x) (erf form) or its tanh approximation"""
    rules = (f"∂L/∂x = {GRAD_OUT} · (Φ(x) + x·φ(x))",)
    @staticmethod
    def forward(ctx, x, *, approximate):
        x = float_values(x)
        ctx.save_for_backward(x)
        if approximate == "tanh":
            c = math.sqrt(2 / math.pi)
            return 0.5 * x * (1 + ctx.xp.tanh(c * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1 + ctx.backend.erf(x / math.sqrt(2)))

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        if ctx.params["approximate"] == "tanh":
            c = math.sqrt(2 / math.pi)
            t = tanh(c * (x + 0.044715 * x ** 3))
            return gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x))
        cdf = 0.5 * (1 + Erf.apply(x / math.sqrt(2)))
        pdf = exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return gy * (cdf + x * pdf)


class Erf(Function):
    """y = erf x"""
    rules = (f"∂L/∂x = {GRAD_OUT} · 2/√π · e^(−x²)",)
    @staticmethod
    def forward(ctx, x):
        x = float_values(x)
        ctx.save_for_backward(x)
        return ctx.backend.erf(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * (2 / math.sqrt(math.pi)) * exp(-x * x)


class Softmax(Function):
    """y_i = e^x_i / sum_j e^x_j along an axis"""
    rules = (f"∂L/∂x = y ⊙ ({GRAD_OUT} − Σ {GRAD_OUT} ⊙ y)",)
    keeps_inputs = True  # a cross-entropy loss after it reads the logits under it (nn.training)
    @staticmethod
    def forward(ctx, x, *, axis):
        _check_axis("Softmax", x, axis)
        y = ctx.backend.softmax(float_values(x), axis)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return y * (gy - (gy * y).sum(axis=ctx.params["axis"], keepdims=True))


class LogSoftmax(Function):
    """y_i = x_i - log sum_j e^x_j along an axis"""
    rules = (f"∂L/∂x = {GRAD_OUT} − softmax(x) · Σ {GRAD_OUT}",)
    @staticmethod
    def forward(ctx, x, *, axis):
        _check_axis("LogSoftmax", x, axis)
        y = ctx.backend.log_softmax(float_values(x), axis)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy - exp(y) * gy.sum(axis=ctx.params["axis"], keepdims=True)


def _check_axis(op: str, x: Any, axis: int) -> None:
    checks.integer(op, "axis", axis)
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"{op}: axis {axis!r} is out of range for a tensor of shape {shape_str(x.shape)}; "
                         f"use an int from {-x.ndim} to {x.ndim - 1}")


def relu(x: Tensor) -> Tensor:
    """max(x, 0); the gradient at 0 is 0, as in PyTorch."""
    return ReLU.apply(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    return LeakyReLU.apply(x, negative_slope=checks.real("leaky_relu", "negative_slope", negative_slope))


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid.apply(x)


def tanh(x: Tensor) -> Tensor:
    return Tanh.apply(x)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^(beta x)) / beta, a smooth relu; x itself where beta x > threshold, as PyTorch."""
    beta = checks.real("softplus", "beta", beta)
    if beta == 0:
        raise ArgumentError("softplus: beta divides the result and must not be 0; the default is 1.0")
    if not checks.is_real(threshold) or math.isnan(threshold):
        raise ArgumentTypeError(f"softplus: threshold must be a number, got {threshold!r}")
    return Softplus.apply(x, beta=beta, threshold=float(threshold))


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU: the exact erf form by default, ``approximate="tanh"`` for the tanh form."""
    checks.choice("gelu", "approximate", approximate, ("none", "tanh"))
    return Gelu.apply(x, approximate=approximate)


def erf(x: Tensor) -> Tensor:
    return Erf.apply(x)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Probabilities along ``axis``; stable for large inputs."""
    return Softmax.apply(x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Log-probabilities along ``axis``; stable for large inputs."""
    return LogSoftmax.apply(x, axis=axis)
