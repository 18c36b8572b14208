"""Keras's activations by name, for ``activation="relu"`` and ``layers.Activation("softmax")``.

Each is one of the engine's differentiable ops (or a short composition of them): nothing here
has a gradient of its own.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import functional as F
from ..errors import ArgumentError, ArgumentTypeError
from ..tensor import Tensor

__all__ = ["gelu", "get", "leaky_relu", "linear", "relu", "relu6", "serialize", "sigmoid", "silu", "softmax",
           "softplus", "swish", "tanh"]


def linear(x: Tensor) -> Tensor:
    """y = x (Keras's name for no activation)."""
    return x


def relu(x: Tensor) -> Tensor:
    return F.relu(x)


def relu6(x: Tensor) -> Tensor:
    return F.minimum(F.relu(x), 6.0)


def leaky_relu(x: Tensor, negative_slope: float = 0.2) -> Tensor:
    """Keras's default slope is 0.2 (PyTorch's 0.01)."""
    return F.leaky_relu(x, negative_slope)


def sigmoid(x: Tensor) -> Tensor:
    return F.sigmoid(x)


def tanh(x: Tensor) -> Tensor:
    return F.tanh(x)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return F.softmax(x, axis)


def softplus(x: Tensor) -> Tensor:
    return F.softplus(x)


def gelu(x: Tensor, approximate: bool = False) -> Tensor:
    """The exact (erf) form by default, as Keras 3."""
    return F.gelu(x, "tanh" if approximate else "none")


def silu(x: Tensor) -> Tensor:
    """y = x sigmoid(x)"""
    return x * F.sigmoid(x)


swish = silu

_NAMES: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": linear, "relu": relu, "relu6": relu6, "leaky_relu": leaky_relu, "sigmoid": sigmoid,
    "tanh": tanh, "softmax": softmax, "softplus": softplus, "gelu": gelu, "silu": silu, "swish": swish}


def get(identifier: Any, where: str = "activation") -> Callable[[Tensor], Tensor]:
    """The activation function for a name, None (linear) or a callable (kept as it is)."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        if identifier not in _NAMES:
            raise ArgumentError(f"{where}: unknown activation {identifier!r}; known: {', '.join(sorted(_NAMES))} "
                                "(or pass a callable)")
        return _NAMES[identifier]
    if callable(identifier):
        return identifier
    raise ArgumentTypeError(f"{where}: activation must be a name such as 'relu', a callable or None, "
                            f"got {identifier!r}")


def serialize(fn: Callable) -> Any:
    """The name of a built-in activation (what ``get_config`` shows); the callable itself otherwise."""
    for name, known in _NAMES.items():
        if fn is known:
            return name
    return fn
