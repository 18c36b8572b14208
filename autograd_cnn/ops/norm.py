"""Regularisation and normalisation: dropout and batch normalisation."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import checks
from ..autograd import GRAD_OUT, Function, is_grad_enabled
from ..errors import ArgumentError, ShapeError, shape_str
from ..random import backend_rng
from ..tensor import Tensor, as_tensor

__all__ = ["batch_norm", "dropout"]


class Dropout(Function):
    """y = x * mask / (1 - p), mask_i ~ Bernoulli(1 - p)"""
    saved_names = ("the dropout mask",)
    rules = (f"∂L/∂x = {GRAD_OUT} · mask / (1 − p)",)
    @staticmethod
    def forward(ctx, x, *, p):
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype("float32")
        keep = backend_rng(ctx.backend).random(x.shape, dtype=dtype) >= p
        # The mask already holds the 1 / (1 - p) rescaling, so backward is one multiply.
        scale = 0.0 if p >= 1 else 1.0 / (1.0 - p)
        mask = keep.astype(dtype) * dtype.type(scale)
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, gy):
        (mask,) = ctx.saved_tensors
        return gy * mask


def _channel_axes(x_ndim: int) -> tuple:
    """Every axis but the channel axis 1: (0,) for (N, C), (0, 2, 3) for (N, C, H, W)."""
    return (0,) + tuple(range(2, x_ndim))


def _channel_shape(x_ndim: int, channels: int) -> tuple:
    """(1, C, 1, ...): a per-channel vector shaped to broadcast against x."""
    return (1, channels) + (1,) * (x_ndim - 2)


class BatchNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, statistics per channel (axis 1)"""
    saved_names = ("x", "γ", "x̂", "1/σ")
    rules = (f"∂L/∂x = γ/σ · ({GRAD_OUT} − mean {GRAD_OUT} − x̂ · mean({GRAD_OUT} · x̂))",
             f"∂L/∂γ = Σ {GRAD_OUT} · x̂",
             f"∂L/∂β = Σ {GRAD_OUT}")
    @staticmethod
    def forward(ctx, x, weight, bias, *, running_mean, running_var, training, momentum, eps):
        xp = ctx.xp
        axes, shape = _channel_axes(x.ndim), _channel_shape(x.ndim, x.shape[1])
        ctx.axes, ctx.shape = axes, shape
        if training:
            mean = x.mean(axis=axes, keepdims=True)
            var = x.var(axis=axes, keepdims=True)
            if running_mean is not None:
                _update_running(xp, running_mean, running_var, mean, var, x.size // x.shape[1], momentum)
        else:  # the output keeps x's dtype whatever the running statistics' dtype
            mean = running_mean.reshape(shape).astype(x.dtype, copy=False)
            var = running_var.reshape(shape).astype(x.dtype, copy=False)
        invstd = (1.0 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
        xhat = (x - mean) * invstd
        ctx.mean = mean.astype(x.dtype, copy=False)  # for a create_graph backward in eval mode
        ctx.save_for_backward(x, weight, xhat, invstd)
        return xhat * weight.reshape(shape) + bias.reshape(shape)

    @staticmethod
    def backward(ctx, gy):
        x, weight, xhat, invstd = ctx.saved_tensors
        axes, training = ctx.axes, ctx.params["training"]
        if is_grad_enabled() and training:
            # create_graph: rebuild the statistics from x so second derivatives see them move.
            mean = x.mean(axis=axes, keepdims=True)
            invstd = (x.var(axis=axes, keepdims=True) + ctx.params["eps"]) ** -0.5
            xhat = (x - mean) * invstd
        elif is_grad_enabled():
            xhat = (x - ctx.mean) * invstd  # eval: fixed statistics, xhat still depends on x
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gxhat = gy * weight.reshape(ctx.shape)
            if training:
                gxhat = (gxhat - gxhat.mean(axis=axes, keepdims=True)
                         - xhat * (gxhat * xhat).mean(axis=axes, keepdims=True))
            gx = gxhat * invstd
        if ctx.needs_input_grad[1]:
            gw = (gy * xhat).sum(axis=axes)
        if ctx.needs_input_grad[2]:
            gb = gy.sum(axis=axes)
        return gx, gw, gb


def _update_running(xp: Any, running_mean: Any, running_var: Any, mean: Any, var: Any, count: int,
                    momentum: float) -> None:
    """running = (1 - momentum) * running + momentum * batch, in place; the variance unbiased."""
    unbiased = var * (count / (count - 1))
    running_mean *= 1 - momentum
    running_mean += (momentum * mean.reshape(-1)).astype(running_mean.dtype, copy=False)
    running_var *= 1 - momentum
    running_var += (momentum * unbiased.reshape(-1)).astype(running_var.dtype, copy=False)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p).

    Identity when ``training`` is False or ``p`` is 0. Masks come from the backend's
    generator, so ``ag.manual_seed`` repeats them.
    """
    x = as_tensor("dropout", x)
    p = checks.real("dropout", "p (the probability of zeroing an element)", p, 0.0, 1.0)
    if not checks.flag("dropout", "training", training) or p == 0:
        return x
    return Dropout.apply(x, p=float(p))


def batch_norm(x: Tensor, running_mean: Tensor | ArrayLike | None, running_var: Tensor | ArrayLike | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = True,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (axis 1) of x (N, C), (N, C, L) or (N, C, H, W).

    Training uses the batch's statistics and updates ``running_mean``/``running_var`` in
    place (the variance unbiased, as PyTorch); evaluation uses the running statistics.
    """
    x = as_tensor("batch_norm", x)
    training = checks.flag("batch_norm", "training", training)
    momentum = checks.real("batch_norm", "momentum", momentum, 0.0, 1.0)
    eps = checks.real("batch_norm", "eps", eps, 0.0, low_open=True)  # the variance of a constant channel is 0
    if x.ndim not in (2, 3, 4):
        raise ShapeError(f"batch_norm: expects input (N, C), (N, C, L) or (N, C, H, W), "
                         f"got {shape_str(x.shape)}")
    channels = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (channels,):
            raise ShapeError(f"batch_norm: {name} must have shape ({channels},) for input "
                             f"{shape_str(x.shape)} with {channels} channels, got {shape_str(tuple(t.shape))}")
    if training and x.size // channels < 2:
        raise ShapeError(f"batch_norm: training needs more than one value per channel, got input "
                         f"{shape_str(x.shape)}; use a larger batch or call eval()")
    if not training and (running_mean is None or running_var is None):
        raise ArgumentError("batch_norm: evaluation (training=False) needs running_mean and running_var")
    xp = x.backend_object.xp
    if weight is None:
        weight = Tensor(xp.ones(channels, dtype=x.dtype), x.backend_object)
    if bias is None:
        bias = Tensor(xp.zeros(channels, dtype=x.dtype), x.backend_object)
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    return BatchNorm.apply(x, weight, bias, running_mean=rm, running_var=rv, training=bool(training),
                           momentum=momentum, eps=eps)
