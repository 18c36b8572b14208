"""Keras's merging layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, and
the functions ``add([...])`` and ``concatenate([...], axis=-1)``."""
from __future__ import annotations

from functools import reduce
from typing import Any

from ... import checks
from ... import functional as F
from ...errors import ArgumentError, ShapeError
from ..graph import shape_text
from .base import Layer


class _Merge(Layer):
    """A layer of a list of inputs whose shapes must agree (sizes of 1 broadcast, as in Keras)."""

    least = 2

    def _shapes(self, inputs: Any) -> list[tuple]:
        if not isinstance(inputs, (list, tuple)) or len(inputs) < self.least:
            raise ArgumentError(f"{self!r} takes a list of at least {self.least} inputs, got "
                                f"{type(inputs).__name__ if not isinstance(inputs, (list, tuple)) else len(inputs)}")
        return [tuple(x) if isinstance(x, tuple) else tuple(x.shape) for x in inputs]

    def build(self, input_shape: Any) -> None:
        self._agree(self._shapes(input_shape if isinstance(input_shape, list) else [input_shape]))

    def _check_input(self, inputs: Any) -> None:
        self._agree(self._shapes(inputs))

    def _agree(self, shapes: list[tuple]) -> None:
        for other in shapes[1:]:
            a = shapes[0]
            if len(other) != len(a) or any(p not in (q, 1, None) and q not in (1, None)
                                           for p, q in zip(a[1:], other[1:])):
                raise ShapeError(f"{self!r} cannot combine inputs of shapes "
                                 f"{' and '.join(shape_text(s) for s in shapes)}: every input needs the same shape "
                                 "(but the batch); reshape one, or use Concatenate to join them")

    def call(self, inputs: list) -> Any:
        return reduce(self._merge, inputs)


class Add(_Merge):
    """The sum of the inputs."""

    @staticmethod
    def _merge(a: Any, b: Any) -> Any:
        return a + b


class Subtract(_Merge):
    """The first input minus the second."""

    def _agree(self, shapes: list[tuple]) -> None:
        if len(shapes) != 2:
            raise ArgumentError(f"{self!r} takes exactly two inputs, got {len(shapes)}")
        super()._agree(shapes)

    @staticmethod
    def _merge(a: Any, b: Any) -> Any:
        return a - b


class Multiply(_Merge):
    """The product of the inputs."""

    @staticmethod
    def _merge(a: Any, b: Any) -> Any:
        return a * b


class Maximum(_Merge):
    @staticmethod
    def _merge(a: Any, b: Any) -> Any:
        return F.maximum(a, b)


class Minimum(_Merge):
    @staticmethod
    def _merge(a: Any, b: Any) -> Any:
        return F.minimum(a, b)


class Average(_Merge):
    """The mean of the inputs."""

    def call(self, inputs: list) -> Any:
        return reduce(lambda a, b: a + b, inputs) * (1.0 / len(inputs))


class Concatenate(_Merge):
    """The inputs joined along ``axis`` (every other size the same)."""

    least = 1

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = checks.integer("Concatenate", "axis", axis)
        self._remember(axis=axis)

    def _agree(self, shapes: list[tuple]) -> None:
        rank = len(shapes[0])
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ShapeError(f"{self!r}: axis {self.axis} is not an axis of inputs {shape_text(shapes[0])} "
                             "(other than the batch)")
        axis = self.axis % rank
        for other in shapes[1:]:
            if len(other) != rank or any(p != q and None not in (p, q)
                                         for i, (p, q) in enumerate(zip(shapes[0], other)) if i not in (0, axis)):
                raise ShapeError(f"{self!r} cannot join inputs of shapes {' and '.join(shape_text(s) for s in shapes)} "
                                 f"along axis {self.axis}: every other size must be the same")

    def call(self, inputs: list) -> Any:
        return F.concat(list(inputs), axis=self.axis % inputs[0].ndim)


def add(inputs: list, **kwargs: Any) -> Any:
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def concatenate(inputs: list, axis: int = -1, **kwargs: Any) -> Any:
    """``Concatenate(axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


__all__ = ["Add", "Average", "Concatenate", "Maximum", "Minimum", "Multiply", "Subtract", "add", "concatenate"]
