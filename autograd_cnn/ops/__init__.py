"""Derivative rules, one module per op family. Each Function's backward sits beside its forward."""
from . import activation, elementwise, loss, matmul, reduce, shape  # noqa: F401
