"""Argument checks shared by the layers, the optimizers, the tensor factories and the ops' wrappers.

Each check takes ``where`` (the function or class being called), the argument's name and its
value, and either returns the value in a plain form or raises an error that names all three
and what is allowed: ``ArgumentTypeError`` for a wrong type, ``ArgumentError`` for a value out
of range. A bad argument is refused where it is given, not deep inside the first forward or
the first optimizer step.

Booleans are refused where a number is asked for: ``True`` is an int to Python, but
``Conv2d(True, 1, 3)`` is a mistake, not one channel.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError


def is_int(value: Any) -> bool:
    """An integer (Python's or NumPy's), not a bool."""
    if type(value) is int:  # the common case, without the slower test against numbers.Integral
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """A real number (int or float, Python's or NumPy's), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _at_least(minimum: int | None) -> str:
    return "" if minimum is None else f" >= {minimum}"


def integer(where: str, name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int, at least ``minimum`` when given."""
    if not is_int(value):
        raise ArgumentTypeError(f"{where}: {name} must be an int{_at_least(minimum)}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ArgumentError(f"{where}: {name} must be an int{_at_least(minimum)}, got {value!r}")
    return int(value)


def ints(where: str, name: str, value: Any, n: int, minimum: int | None = None) -> tuple:
    """An int or a sequence of ``n`` ints (a kernel size 3 or (3, 5)), each at least ``minimum``,
    as an ``n``-tuple."""
    items = (value,) * n if is_int(value) else value
    # (A tuple or a list is tested first: the ops check their geometry on every call.)
    sequence = type(items) in (tuple, list) or (isinstance(items, Sequence) and not isinstance(items, str))
    if not sequence or len(items) != n or not all(is_int(v) for v in items):
        raise ArgumentTypeError(f"{where}: {name} must be {_ints_wanted(n, minimum)}, got {value!r}")
    if minimum is not None and any(v < minimum for v in items):
        raise ArgumentError(f"{where}: {name} must be {_ints_wanted(n, minimum)}, got {value!r}")
    return tuple(int(v) for v in items)


def _ints_wanted(n: int, minimum: int | None) -> str:
    return f"an int{_at_least(minimum)}" + ("" if n == 1 else f" or {n} of them")


def real(where: str, name: str, value: Any, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the interval from ``low`` to ``high`` (an end left out
    where ``low_open``/``high_open``)."""
    interval = _interval(low, high, low_open, high_open)
    if not is_real(value):
        raise ArgumentTypeError(f"{where}: {name} must be a number{interval}, got {value!r}")
    number = float(value)
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if not math.isfinite(number) or below or above:
        raise ArgumentError(f"{where}: {name} must be a finite number{interval}, got {value!r}")
    return number


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f" {'<' if high_open else '<='} {high:g}"
    return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def choice(where: str, name: str, value: Any, options: Sequence[Any]) -> Any:
    """``value`` if it is one of ``options``."""
    if not any(value is o or (type(value) is type(o) and value == o) for o in options):
        shown = ", ".join(repr(o) for o in options)
        raise ArgumentError(f"{where}: {name} must be one of {shown}; got {value!r}")
    return value


def flag(where: str, name: str, value: Any) -> bool:
    """``value`` as a bool; only True or False (``bias=0`` reads as a mistake, not as False)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{where}: {name} must be True or False, got {value!r}")
    return bool(value)
