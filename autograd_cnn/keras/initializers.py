"""Keras's weight initializers, by name or as objects: ``kernel_initializer="glorot_uniform"``.

An initializer is called as Keras calls it, ``init(shape, dtype)``, with the shape in Keras's
layout (a Conv2D kernel is ``(kh, kw, in, out)``), and returns an array of the default backend
drawn from its seeded generator (``ag.manual_seed``). The fans are Keras's: for a kernel of
more than two axes, ``fan_in = shape[-2] * receptive field``, ``fan_out = shape[-1] * receptive field``.
"""
from __future__ import annotations

import math
from typing import Any

from .. import checks
from ..backends import get_backend
from ..errors import ArgumentError, ArgumentTypeError
from ..random import backend_rng

__all__ = ["Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Initializer", "LecunNormal",
           "LecunUniform", "Ones", "RandomNormal", "RandomUniform", "TruncatedNormal", "Zeros", "get"]

# A normal truncated at two standard deviations has this standard deviation (Keras's constant).
_TRUNCATED_STD = 0.87962566103423978


def fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight in Keras's layout."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``init(shape, dtype="float32")`` returns a new array."""

    def __call__(self, shape: tuple, dtype: Any = "float32") -> Any:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Initializer:
        return cls(**config)


class Zeros(Initializer):
    def __call__(self, shape: tuple, dtype: Any = "float32") -> Any:
        return get_backend().xp.zeros(shape, dtype=dtype)


class Ones(Initializer):
    def __call__(self, shape: tuple, dtype: Any = "float32") -> Any:
        return get_backend().xp.ones(shape, dtype=dtype)


class Constant(Initializer):
    def __init__(self, value: float = 0.0) -> None:
        self.value = checks.real("Constant", "value", value)

    def __call__(self, shape: tuple, dtype: Any = "float32") -> Any:
        return get_backend().xp.full(shape, self.value, dtype=dtype)

    def get_config(self) -> dict:
        return {"value": self.value}


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        self.minval, self.maxval, self.seed = float(minval), float(maxval), seed

    def __call__(self, shape: tuple, dtype: Any = "float32") -> Any:
        return _uniform(shape, dtype, self.minval, self.maxval)

    def get_config(self) -> dict:
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        self.mean, self.stddev, self.seed = float(mean), float(stddev), seed

    def __call__(self, shape: tuple, dtype: Any = "float32") -> Any:
        backend = get_backend()
        return (backend_rng(backend).standard_normal(shape, dtype=dtype) * self.stddev + self.mean).astype(dtype)

    def get_config(self) -> dict:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(RandomNormal):
    """A normal redrawn wherever it falls more than two standard deviations from the mean."""

    def __call__(self, shape: tuple, dtype: Any = "float32") -> Any:
        return (_truncated(shape, dtype) * self.stddev + self.mean).astype(dtype)


class _VarianceScaling(Initializer):
    """Keras's family: a scale over a fan (``fan_in``, or the mean of both), uniform or truncated normal."""

    scale, mode, uniform = 1.0, "fan_avg", True

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def __call__(self, shape: tuple, dtype: Any = "float32") -> Any:
        fan_in, fan_out = fans(tuple(shape))
        fan = fan_in if self.mode == "fan_in" else (fan_in + fan_out) / 2
        variance = self.scale / max(1.0, fan)
        if self.uniform:
            limit = math.sqrt(3.0 * variance)
            return _uniform(shape, dtype, -limit, limit)
        return (_truncated(shape, dtype) * (math.sqrt(variance) / _TRUNCATED_STD)).astype(dtype)

    def get_config(self) -> dict:
        return {"seed": self.seed}


class GlorotUniform(_VarianceScaling):
    """Uniform in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out)): Keras's default kernel."""


class GlorotNormal(_VarianceScaling):
    uniform = False


class HeUniform(_VarianceScaling):
    scale, mode = 2.0, "fan_in"


class HeNormal(_VarianceScaling):
    scale, mode, uniform = 2.0, "fan_in", False


class LecunUniform(_VarianceScaling):
    mode = "fan_in"


class LecunNormal(_VarianceScaling):
    mode, uniform = "fan_in", False


def _uniform(shape: tuple, dtype: Any, low: float, high: float) -> Any:
    sample = backend_rng(get_backend()).random(shape, dtype=dtype)
    return (sample * (high - low) + low).astype(dtype)


def _truncated(shape: tuple, dtype: Any) -> Any:
    """Standard normal samples, each outside [-2, 2] drawn again."""
    rng = backend_rng(get_backend())
    sample = rng.standard_normal(shape, dtype=dtype)
    outside = abs(sample) > 2
    while outside.any():
        sample[outside] = rng.standard_normal(int(outside.sum()), dtype=dtype)
        outside = abs(sample) > 2
    return sample


_NAMES = {"zeros": Zeros, "ones": Ones, "constant": Constant, "random_uniform": RandomUniform,
          "random_normal": RandomNormal, "truncated_normal": TruncatedNormal, "glorot_uniform": GlorotUniform,
          "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
          "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal}


def serialize(initializer: Any) -> Any:
    """The name Keras's configs use for a built-in initializer; the object otherwise."""
    for name, cls in _NAMES.items():
        if type(initializer) is cls and not initializer.get_config().get("value"):
            return name
    return initializer


def get(identifier: Any, where: str = "initializer") -> Initializer:
    """An initializer from a name ("glorot_uniform", "GlorotUniform", "zeros"), an object or a callable."""
    if isinstance(identifier, str):
        key = identifier if identifier in _NAMES else _snake(identifier)
        if key not in _NAMES:
            raise ArgumentError(f"{where}: unknown initializer {identifier!r}; known: {', '.join(sorted(_NAMES))}")
        return _NAMES[key]()
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise ArgumentTypeError(f"{where}: an initializer is a name such as 'glorot_uniform', an Initializer "
                            f"or a callable init(shape, dtype), got {identifier!r}")


def _snake(name: str) -> str:
    from .graph import snake_case

    return snake_case(name)
