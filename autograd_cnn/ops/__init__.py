"""Derivative rules, one module per op family. Each Function's backward sits beside its forward.

Each module's ``__all__`` lists its wrappers that users call as ``F.*``: ``functional.py``
re-exports them, so a new wrapper there is an ``F.`` name with no other edit.

This package is also the namespace that ``Tensor``'s operators and methods call (``a * b`` is
``mul(a, b)`` here): it hands itself to ``tensor.bind_ops`` once, below.
"""
import sys

from ..autograd import backward
from ..tensor import bind_ops
from . import conv, loss, norm, pool  # noqa: F401  (every op family loads with the package)
from .activation import log_softmax, relu, sigmoid, softmax, tanh
from .elementwise import abs, add, astype, compare, div, exp, log, mul, neg, pow, sqrt, sub
from .matmul import matmul  # the function: Tensor's ``@`` calls _ops.matmul
from .reduce import argmax, argmin, max, mean, min, sum, var
from .shape import flatten, getitem, reshape, to_backend, transpose

__all__ = [
    "abs", "add", "argmax", "argmin", "astype", "backward", "compare", "div", "exp", "flatten",
    "getitem", "log", "log_softmax", "matmul", "max", "mean", "min", "mul", "neg", "pow", "relu", "reshape",
    "sigmoid", "softmax", "sqrt", "sub", "sum", "tanh", "to_backend", "transpose", "var",
]

bind_ops(sys.modules[__name__])
