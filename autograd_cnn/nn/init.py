"""Weight initialisation, in place, from the backend's seeded generator (``ag.manual_seed``)."""
from __future__ import annotations

import math

from ..errors import ShapeError
from ..random import backend_rng
from ..tensor import Tensor


def fan_in(weight: Tensor) -> int:
    """Inputs feeding one output: in_features, or in_channels/groups * kernel area (axis 1 on)."""
    if weight.ndim < 2:
        raise ShapeError(f"fan_in: needs a weight of at least 2 dimensions, got shape {weight.shape}")
    return math.prod(weight.shape[1:])


def uniform_(t: Tensor, low: float = 0.0, high: float = 1.0) -> Tensor:
    """Fill with samples uniform in [low, high)."""
    dtype = t.dtype if t.dtype.kind == "f" else "float32"
    sample = backend_rng(t.backend_object).random(t.shape, dtype=dtype)
    t.data[...] = sample * (high - low) + low
    t.bump_version()
    return t


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with samples from N(mean, std^2)."""
    sample = backend_rng(t.backend_object).standard_normal(t.shape, dtype=t.dtype)
    t.data[...] = sample * std + mean
    t.bump_version()
    return t


def zeros_(t: Tensor) -> Tensor:
    t.data[...] = 0
    t.bump_version()
    return t


def ones_(t: Tensor) -> Tensor:
    t.data[...] = 1
    t.bump_version()
    return t


def kaiming_uniform_(t: Tensor, a: float = math.sqrt(5), fan: int | None = None) -> Tensor:
    """He-uniform: bound = sqrt(6 / ((1 + a^2) fan_in)). PyTorch's layers use a = sqrt(5),
    which makes the bound 1 / sqrt(fan_in)."""
    fan = fan if fan is not None else fan_in(t)
    bound = math.sqrt(6.0 / ((1 + a * a) * fan))
    return uniform_(t, -bound, bound)


def xavier_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot-uniform (Keras's default for Dense and Conv2D): bound = gain sqrt(6 / (fan_in + fan_out))."""
    receptive = math.prod(t.shape[2:]) if t.ndim > 2 else 1
    fan_out = t.shape[0] * receptive
    bound = gain * math.sqrt(6.0 / (fan_in(t) + fan_out))
    return uniform_(t, -bound, bound)


def bias_uniform_(bias: Tensor, fan: int) -> Tensor:
    """PyTorch's bias default: uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)]."""
    bound = 1.0 / math.sqrt(fan) if fan > 0 else 0.0
    return uniform_(bias, -bound, bound)
