"""The ``F.*`` names users call: ``import autograd_cnn.functional as F``."""
from __future__ import annotations

from .ops.activation import erf, gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .ops.elementwise import abs, exp, log, maximum, minimum, sqrt, where
from .ops.loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .ops.matmul import linear, matmul
from .ops.reduce import max, mean, min, sum, var
from .ops.shape import concat, pad, reshape, stack, transpose


def flatten(x, start_axis: int = 1):
    """Join every axis from ``start_axis`` on (the batch axis 0 stays by default)."""
    from .ops.shape import flatten as _flatten

    return _flatten(x, start_axis)


__all__ = [
    "abs", "binary_cross_entropy_with_logits", "concat", "cross_entropy", "erf", "exp",
    "flatten", "gelu", "leaky_relu", "linear", "log", "log_softmax", "matmul", "max",
    "maximum", "mean", "min", "minimum", "mse_loss", "nll_loss", "pad", "relu", "reshape",
    "sigmoid", "softmax", "sqrt", "stack", "sum", "tanh", "transpose", "var", "where",
]
