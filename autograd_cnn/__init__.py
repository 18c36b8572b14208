"""autograd_cnn: a small, readable deep-learning engine with NumPy and CuPy backends.

    import autograd_cnn as ag
    import autograd_cnn.functional as F
    from autograd_cnn import nn, optim
"""
from __future__ import annotations

from typing import Any

import numpy as _np

from .autograd import (
    detect_anomaly,
    enable_grad,
    grad,
    graph_of,
    is_anomaly_enabled,
    is_grad_enabled,
    keep_values,
    no_grad,
    set_detect_anomaly,
    set_grad_enabled,
)
from .backends import available_backends, get_backend, set_backend, use_backend
from .creation import arange, from_dlpack, from_numpy, ones, ones_like, rand, randn, tensor, zeros, zeros_like
from .errors import (
    AnomalyError,
    ArgumentError,
    ArgumentTypeError,
    AutogradError,
    BackendError,
    CheckpointError,
    DistributedError,
    GraphError,
    NonFiniteError,
    ShapeError,
    UsageError,
)
from .ops.elementwise import maximum, minimum, where
from .ops.shape import chunk, concat, pad, split, stack, unbind
from .random import manual_seed
from .tensor import Tensor
from .testing import GradcheckError, gradcheck, gradgradcheck

__version__ = "0.1.0"

float32 = _np.dtype("float32")
float64 = _np.dtype("float64")
int64 = _np.dtype("int64")
int32 = _np.dtype("int32")

# Submodules that pull in more (nn, optim, data, visual, distributed, the exporters) load on
# first use, so `import autograd_cnn` stays fast.
_LAZY = ("functional", "nn", "optim", "data", "models", "visual", "distributed", "onnx", "interop")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name in ("save", "load"):
        from . import serialization

        return getattr(serialization, name)
    raise AttributeError(f"module 'autograd_cnn' has no attribute {name!r}")


__all__ = [
    "AnomalyError", "ArgumentError", "ArgumentTypeError", "AutogradError", "BackendError", "CheckpointError",
    "DistributedError", "GradcheckError", "GraphError", "NonFiniteError", "ShapeError", "Tensor", "UsageError",
    "arange", "available_backends", "chunk", "concat", "detect_anomaly", "enable_grad", "float32", "float64",
    "from_dlpack", "from_numpy", "get_backend", "grad", "graph_of", "gradcheck", "gradgradcheck", "int32", "int64",
    "is_anomaly_enabled", "is_grad_enabled", "keep_values", "load", "manual_seed", "maximum", "minimum", "no_grad",
    "ones", "ones_like", "pad", "rand", "randn", "save", "set_backend", "set_detect_anomaly", "set_grad_enabled",
    "split", "stack", "tensor", "unbind", "use_backend", "where", "zeros", "zeros_like",
]
