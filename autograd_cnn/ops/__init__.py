"""Derivative rules, one module per op family. Each Function's backward sits beside its forward."""
from . import activation, conv, elementwise, loss, matmul, norm, pool, reduce, shape  # noqa: F401
