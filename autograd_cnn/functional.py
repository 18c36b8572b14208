"""The ``F.*`` names users call: ``import autograd_cnn.functional as F``."""
from __future__ import annotations

from .ops.activation import erf, gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .ops.conv import conv1d, conv2d, conv_transpose2d, locally_connected2d
from .ops.elementwise import abs, exp, log, maximum, minimum, sqrt, where
from .ops.loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .ops.matmul import linear, matmul
from .ops.norm import batch_norm, dropout
from .ops.pool import (
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    global_avg_pool2d,
    global_max_pool2d,
    max_pool1d,
    max_pool2d,
)
from .ops.reduce import max, mean, min, sum, var
from .ops.shape import concat, pad, reshape, stack, transpose


def flatten(x, start_axis: int = 1):
    """Join every axis from ``start_axis`` on (the batch axis 0 stays by default)."""
    from .ops.shape import flatten as _flatten

    return _flatten(x, start_axis)


__all__ = [
    "abs", "batch_norm", "binary_cross_entropy_with_logits", "concat", "cross_entropy", "dropout", "erf", "exp",
    "flatten", "gelu", "leaky_relu", "linear", "log", "log_softmax", "matmul", "max",
    "maximum", "mean", "min", "minimum", "mse_loss", "nll_loss", "pad", "relu", "reshape",
    "sigmoid", "softmax", "sqrt", "stack", "sum", "tanh", "transpose", "var", "where",
    "adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "conv1d", "conv2d", "conv_transpose2d",
    "global_avg_pool2d", "global_max_pool2d", "locally_connected2d", "max_pool1d", "max_pool2d",
]
