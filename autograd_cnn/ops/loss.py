"""Losses. Softmax cross-entropy is one op, so its gradient is the lecture's z - z*."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import checks
from ..autograd import GRAD_OUT, Function
from ..backends.indexing import class_range_message
from ..errors import ArgumentTypeError, ShapeError, shape_str
from ..tensor import Tensor, as_tensor
from .activation import log_softmax, sigmoid, softmax
from .shape import getitem

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy", "mse_loss", "nll_loss"]

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(op: str, losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses  # "none", checked by _inputs before any work


def _inputs(op: str, x: Any, target: Any, reduction: str) -> tuple:
    """A loss's input and target as tensors (the target on the input's backend), the reduction checked."""
    checks.choice(op, "reduction", reduction, _REDUCTIONS)
    x = as_tensor(op, x)
    if x.dtype.kind != "f":
        raise ArgumentTypeError(f"{op}: the input must hold floats (logits or predictions), got {x.dtype}")
    return x, as_tensor(op, target, x)


class SoftmaxCrossEntropy(Function):
    """loss_n = -sum_c q_nc log softmax(z_n)_c; dL/dz = softmax(z) - q when q sums to 1"""
    rules = (f"∂L/∂z = (softmax(z) − onehot) · {GRAD_OUT}   (z − z*)", f"∂L/∂q = −log softmax(z) · {GRAD_OUT}")
    @staticmethod
    def forward(ctx, logits, q, *, q_sums_to_one):
        ctx.save_for_backward(logits, q)
        return ctx.backend.softmax_cross_entropy(logits, q)

    @staticmethod
    def backward(ctx, gy):
        z, q = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gz = SoftmaxCrossEntropyGrad.apply(z, q, gy, q_sums_to_one=ctx.params["q_sums_to_one"]) if needs[0] else None
        gq = -log_softmax(z) * gy.reshape(gy.shape + (1,)) if needs[1] else None
        return gz, gq


class SoftmaxCrossEntropyGrad(Function):
    """gz = (softmax(z) * s - q) * g, s = sum_c q (1 when q sums to one): the lecture's z - z*, as one op"""
    rules = (f"∂L/∂z = g · s · p ⊙ ({GRAD_OUT} − Σ {GRAD_OUT} ⊙ p), p = softmax(z), s = Σ q (1 for labels)",
             f"∂L/∂q = g · (Σ {GRAD_OUT} ⊙ p − {GRAD_OUT}), only −g · {GRAD_OUT} for labels",
             f"∂L/∂g = Σ {GRAD_OUT} ⊙ (s · p − q)")
    @staticmethod
    def forward(ctx, z, q, g, *, q_sums_to_one):
        ctx.save_for_backward(z, q, g)
        return ctx.backend.softmax_cross_entropy_grad(z, q, g, q_sums_to_one)

    @staticmethod
    def backward(ctx, ggz):
        # gz is g * (s * p - q) with p = softmax(z); softmax's Jacobian is diag(p) - p pᵀ.
        z, q, g = ctx.saved_tensors
        needs, labels = ctx.needs_input_grad, ctx.params["q_sums_to_one"]
        p, g = softmax(z), g.reshape(g.shape + (1,))
        along_p = (ggz * p).sum(axis=-1, keepdims=True)
        s = 1 if labels else q.sum(axis=-1, keepdims=True)
        gz = g * s * p * (ggz - along_p) if needs[0] else None
        gq = None
        if needs[1]:  # s depends on q only when q is not known to sum to one
            gq = -g * ggz if labels else g * (along_p - ggz)
        gg = (ggz * (p * s - q)).sum(axis=-1) if needs[2] else None
        return gz, gq, gg


class OneHot(Function):
    """y = one-hot rows of ``classes`` columns, smoothed by ``smoothing``; no gradient"""
    differentiable = False

    @staticmethod
    def forward(ctx, target, *, classes, smoothing=0.0, dtype="float32"):
        # Label smoothing moves `smoothing` of each row's mass evenly over all classes.
        off = smoothing / classes
        # On a GPU a bad class index is reported at the next read of a value, as CUDA reports
        # its errors, so that the training step never waits for the device.
        return ctx.backend.one_hot("cross_entropy", target, classes, 1 - smoothing + off, off, dtype)

    @staticmethod
    def backward(ctx, gy):
        return None


class BCEWithLogits(Function):
    """loss = max(z, 0) - z t + log(1 + e^-|z|); dL/dz = sigmoid(z) - t"""
    rules = (f"∂L/∂z = (sigmoid(z) − t) · {GRAD_OUT}", f"∂L/∂t = −z · {GRAD_OUT}")
    @staticmethod
    def forward(ctx, z, t):
        xp = ctx.xp
        ctx.save_for_backward(z, t)
        return xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z)))

    @staticmethod
    def backward(ctx, gy):
        z, t = ctx.saved_tensors
        gz = gy * (sigmoid(z) - t) if ctx.needs_input_grad[0] else None
        gt = -gy * z if ctx.needs_input_grad[1] else None
        return gz, gt


def _classes_last(op: str, logits: Tensor) -> Tensor:
    """(N, C, d1, ...) -> (N, d1, ..., C) so the class axis is last, as PyTorch's layout."""
    if logits.ndim < 2:
        raise ShapeError(f"{op}: logits need shape (N, C) or (N, C, ...), got {shape_str(logits.shape)}")
    if logits.ndim == 2:
        return logits
    axes = (0,) + tuple(range(2, logits.ndim)) + (1,)
    return logits.transpose(axes)


def cross_entropy(logits: Tensor, target: Tensor | ArrayLike, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy on logits (N, C[, ...]).

    ``target`` holds class indices (N[, ...]) (Keras's sparse categorical cross-entropy)
    or class probabilities of the logits' shape.
    """
    logits, target_t = _inputs("cross_entropy", logits, target, reduction)
    label_smoothing = checks.real("cross_entropy", "label_smoothing", label_smoothing, 0.0, 1.0)
    z = _classes_last("cross_entropy", logits)
    classes = z.shape[-1]
    if target_t.dtype.kind == "b":
        raise ArgumentTypeError("cross_entropy: target holds booleans; give class indices as integers, or "
                                "class probabilities as floats")
    if target_t.dtype.kind in "iu":
        if target_t.shape != z.shape[:-1]:
            raise ShapeError(f"cross_entropy: logits {shape_str(logits.shape)} need class-index "
                             f"targets of shape {shape_str(z.shape[:-1])}, got {shape_str(target_t.shape)}")
        q = OneHot.apply(target_t, classes=classes, smoothing=label_smoothing, dtype=logits.dtype)
        q.name = f"{target_t.name} (one-hot)" if target_t.name else None  # the pictures show the user's name
    else:
        if target_t.shape != logits.shape:
            labels = target_t.shape == z.shape[:-1]  # shaped as class indices, but floats: a likely slip
            raise ShapeError(f"cross_entropy: probability targets must have the logits' shape "
                             f"{shape_str(logits.shape)}, got {shape_str(target_t.shape)}" + (
                                 f"; the target holds {target_t.dtype} values shaped as class indices: for "
                                 "labels give integer class indices, e.g. target.astype('int64')" if labels else ""))
        q = _classes_last("cross_entropy", target_t)
        if label_smoothing:
            q = q * (1 - label_smoothing) + label_smoothing / classes
    out_dtype = np.result_type(z.dtype, q.dtype)
    if out_dtype == np.float16:  # half precision overflows and rounds in the sums: they run in float32
        z, q = z.astype(np.float32), q.astype(np.float32)
    elif z.dtype != q.dtype:  # float16 logits with float32 targets: the softmax runs in float32 too
        z, q = z.astype(out_dtype), q.astype(out_dtype)
    losses = SoftmaxCrossEntropy.apply(z, q, q_sums_to_one=target_t.dtype.kind in "iub")
    out = _reduce("cross_entropy", losses, reduction)
    return out.astype(out_dtype) if out.dtype != out_dtype else out


def nll_loss(log_probs: Tensor, target: Tensor | ArrayLike, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices, given log-probabilities (N, C)."""
    log_probs, target = _inputs("nll_loss", log_probs, target, reduction)
    xp, t = log_probs.backend_object.xp, target.data
    if t.dtype.kind not in "iu":
        raise ArgumentTypeError(f"nll_loss: target must hold class indices (integers), got {t.dtype}")
    if log_probs.ndim != 2 or t.shape != log_probs.shape[:1]:
        raise ShapeError(f"nll_loss: log_probs (N, C) and target (N,) expected, got "
                         f"{shape_str(log_probs.shape)} and {shape_str(t.shape)}")
    # -1 would pick the last class. On a GPU this reads two numbers back (one wait for the device):
    # nll_loss is the plain loop's loss; cross_entropy, which compile uses, defers its check.
    if t.size and (int(t.min()) < 0 or int(t.max()) >= log_probs.shape[1]):
        raise ShapeError(class_range_message("nll_loss", log_probs.shape[1], int(t.min()), int(t.max())))
    picked = getitem(log_probs, (xp.arange(t.shape[0]), t.astype(xp.int64)))
    return _reduce("nll_loss", -picked, reduction)


def _check_same_shape(op: str, name: str, x: Tensor, target: Tensor | ArrayLike) -> None:
    """A target that has a shape must have x's (a number broadcasts)."""
    if hasattr(target, "shape") and tuple(target.shape) != tuple(x.shape):
        raise ShapeError(f"{op}: {name} {shape_str(x.shape)} and target {shape_str(tuple(target.shape))} "
                         "must have the same shape")


def mse_loss(pred: Tensor, target: Tensor | ArrayLike, reduction: str = "mean") -> Tensor:
    """Mean squared error."""
    pred, target = _inputs("mse_loss", pred, target, reduction)
    _check_same_shape("mse_loss", "pred", pred, target)
    diff = pred - target
    return _reduce("mse_loss", diff * diff, reduction)


def binary_cross_entropy_with_logits(logits: Tensor, target: Tensor | ArrayLike, reduction: str = "mean") -> Tensor:
    """Sigmoid + binary cross-entropy in one stable op."""
    logits, target = _inputs("binary_cross_entropy_with_logits", logits, target, reduction)
    _check_same_shape("binary_cross_entropy_with_logits", "logits", logits, target)
    return _reduce("binary_cross_entropy_with_logits", BCEWithLogits.apply(logits, target), reduction)

