"""Regularisation and normalisation: dropout and batch normalisation."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import checks
from ..autograd import GRAD_OUT, Function, is_grad_enabled
from ..backends.normalization import channel_axes, channel_shape
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
        # An integer input's result has the float dtype NumPy gives x * mask (int64 -> float64): the
        # mask and its scale are made in it, not rounded through float32.
        dtype = x.dtype if x.dtype.kind == "f" else np.result_type(x.dtype, np.float32)
        # The draws are made here, the same on every backend that shares NumPy's generator, so a
        # seed gives one mask on numpy and numba; the kernel compares, scales and multiplies. The
        # generators draw float32 and float64 only: a float16 mask is made from float32 draws.
        draws = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)
        uniform = backend_rng(ctx.backend).random(x.shape, dtype=draws)
        y, mask = ctx.backend.dropout_with_mask(x, uniform, p, dtype)
        ctx.save_for_backward(mask)
        return y

    @staticmethod
    def backward(ctx, gy):
        (mask,) = ctx.saved_tensors
        return gy * mask


class BatchNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, statistics per channel (axis 1)"""
    saved_names = ("x", "γ", "x̂", "1/σ")
    rules = (f"∂L/∂x = γ/σ · ({GRAD_OUT} − mean {GRAD_OUT} − x̂ · mean({GRAD_OUT} · x̂))",
             f"∂L/∂γ = Σ {GRAD_OUT} · x̂",
             f"∂L/∂β = Σ {GRAD_OUT}")
    @staticmethod
    def forward(ctx, x, weight, bias, *, running_mean, running_var, training, momentum, eps):
        ctx.axes, ctx.shape = channel_axes(x.ndim), channel_shape(x.ndim, x.shape[1])
        if training:
            mean, var = ctx.backend.batch_norm_statistics(x)
            if running_mean is not None:
                _update_running(running_mean, running_var, mean, var, x.size // x.shape[1], momentum)
        else:  # the output keeps x's dtype whatever the running statistics' dtype
            mean = running_mean.astype(x.dtype, copy=False)
            var = running_var.astype(x.dtype, copy=False)
        y, xhat, invstd = ctx.backend.batch_norm(x, mean, var, weight, bias, eps)
        ctx.mean = mean.reshape(ctx.shape)  # for a create_graph backward in eval mode
        ctx.save_for_backward(x, weight, xhat, invstd.reshape(ctx.shape))
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight, xhat, invstd = ctx.saved_tensors
        axes, training = ctx.axes, ctx.params["training"]
        if not is_grad_enabled():  # a plain backward: one kernel on the arrays
            grads = ctx.backend.batch_norm_grad(gy.data, xhat.data, weight.data, invstd.data.reshape(-1),
                                                training, ctx.needs_input_grad)
            return tuple(None if g is None else Tensor(g, ctx.backend) for g in grads)
        # create_graph: the same rules as tensor ops, so second derivatives see every path.
        if training:  # rebuild the statistics from x so second derivatives see them move
            mean = x.mean(axis=axes, keepdims=True)
            invstd = (x.var(axis=axes, keepdims=True) + ctx.params["eps"]) ** -0.5
            xhat = (x - mean) * invstd
        else:
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


def _update_running(running_mean: Any, running_var: Any, mean: Any, var: Any, count: int,
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
