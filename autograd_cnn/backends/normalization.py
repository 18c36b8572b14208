"""Normalisation kernels: batch norm's statistics, forward and backward, and dropout's mask, against ``self.xp``.

Batch norm normalises each channel (axis 1) of x (N, C), (N, C, L) or (N, C, H, W) over every
other axis; the per-channel vectors (mean, variance, 1/σ, weight, bias) are (C,) arrays.
"""
from __future__ import annotations

from typing import Any

from .base import Backend


def channel_axes(ndim: int) -> tuple:
    """Every axis but the channel axis 1: (0,) for (N, C), (0, 2, 3) for (N, C, H, W)."""
    return (0,) + tuple(range(2, ndim))


def channel_shape(ndim: int, channels: int) -> tuple:
    """(1, C, 1, ...): a per-channel vector shaped to broadcast against an ndim-axis input."""
    return (1, channels) + (1,) * (ndim - 2)


class NormalizationKernels(Backend):
    """Batch norm and dropout, the kernels ``ops/norm.py`` calls by name."""

    def batch_norm_statistics(self, x: Any) -> tuple:
        """The batch's mean and (biased) variance of each channel, (C,) arrays in x's dtype."""
        axes = channel_axes(x.ndim)
        return x.mean(axis=axes), x.var(axis=axes)

    def batch_norm(self, x: Any, mean: Any, var: Any, weight: Any, bias: Any, eps: float) -> tuple:
        """y = x̂ · weight + bias with x̂ = (x − mean) / sqrt(var + eps): returns y, x̂ (what
        backward keeps) and 1/σ = 1 / sqrt(var + eps), (C,) in x's dtype."""
        shape = channel_shape(x.ndim, x.shape[1])
        invstd = (1.0 / self.xp.sqrt(var + eps)).astype(x.dtype, copy=False)
        xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
        return xhat * weight.reshape(shape) + bias.reshape(shape), xhat, invstd

    def batch_norm_grad(self, gy: Any, xhat: Any, weight: Any, invstd: Any, training: bool,
                        needs: tuple) -> tuple:
        """Batch norm's backward (gx, gweight, gbias), None where ``needs`` says not wanted. In
        training the statistics came from x, so gx loses its mean and its component along x̂:
        gx = γ/σ · (gy − mean gy − x̂ · mean(gy · x̂)); in evaluation gx = γ/σ · gy."""
        axes, shape = channel_axes(gy.ndim), channel_shape(gy.ndim, gy.shape[1])
        gx = gw = gb = None
        if needs[0]:
            gxhat = gy * weight.reshape(shape)
            if training:
                gxhat = (gxhat - gxhat.mean(axis=axes, keepdims=True)
                         - xhat * (gxhat * xhat).mean(axis=axes, keepdims=True))
            gx = gxhat * invstd.reshape(shape)
        if needs[1]:
            gw = (gy * xhat).sum(axis=axes)
        if needs[2]:
            gb = gy.sum(axis=axes)
        return gx, gw, gb

    def dropout_with_mask(self, x: Any, uniform: Any, p: float, dtype: Any) -> tuple:
        """y = x · mask and the mask, in ``dtype`` (a NumPy dtype): 1 / (1 − p) where ``uniform``
        (draws in [0, 1) of x's shape) is at least p, else 0. The mask holds the rescaling, so
        backward is one multiply."""
        scale = 0.0 if p >= 1 else 1.0 / (1.0 - p)
        mask = (uniform >= p).astype(dtype) * dtype.type(scale)
        return x * mask, mask
