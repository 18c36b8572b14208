"""The checks of what ``fit``, ``evaluate``, ``predict`` and ``DataLoader`` are given: an array of
numbers with a first axis of samples (``samples``), finite (``finite``), and class indices where
labels are asked for (``class_indices``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError

# fit, evaluate, predict and DataLoader refuse a bad argument where it is given, naming the call, the
# argument, the value and what is allowed, rather than fail deep inside a layer or, worse, go on
# with a converted value (labels 0.7 read as 0, "1" as 1).

_NOT_NUMBERS = {"U": "strings", "S": "bytes", "O": "objects", "c": "complex numbers", "M": "dates",
                "m": "time spans", "V": "records"}


def samples(where: str, name: str, value: Any, labels: bool = False) -> Any:
    """``value`` as an array of numbers with a first axis of samples: a NumPy array from a list
    or an array, the array of a tensor or a CuPy array as it is (on its device). ``labels``:
    class indices, checked by ``class_indices``."""
    from .tensor import Tensor

    if isinstance(value, Tensor):
        array = value.data
    elif hasattr(value, "__cuda_array_interface__"):
        array = value
    else:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as err:  # ragged lists
            raise ArgumentError(f"{where}: {name} must be an array of numbers of one shape (a NumPy array, a "
                                f"tensor, or nested lists of equal lengths); NumPy says: {err}") from None
    kind = array.dtype.kind
    if labels:
        class_indices(where, name, array)
    elif kind in _NOT_NUMBERS:
        raise ArgumentTypeError(f"{where}: {name} must hold numbers, got an array of {_NOT_NUMBERS[kind]} "
                                f"({array.dtype})")
    if array.ndim == 0:
        raise ArgumentError(f"{where}: {name} must have a first axis of samples, got a single number "
                            f"{value!r}; wrap it in a list for one sample")
    return array


def finite(where: str, name: str, array: Any) -> None:
    """Refuse an array of floats that holds NaN or Inf, naming the first sample that does."""
    if array.dtype.kind != "f":
        return
    xp = np if isinstance(array, np.ndarray) else _device_xp(array)
    good = xp.isfinite(array)
    if bool(good.all()):
        return
    first = int(xp.argmin(good.reshape(len(array), -1).all(axis=1)))
    raise ArgumentError(f"{where}: {name} holds NaN or Inf (the first at {name}[{first}]); drop or "
                        f"replace those samples first")


def class_indices(where: str, name: str, array: Any) -> None:
    """Refuse labels that are not class indices: text, booleans, floats with a fraction, negatives.

    Whole floats (0.0, 1.0, 2.0, as read from a CSV file) are class indices; they become ints
    batch by batch."""
    kind = array.dtype.kind
    what = f"{where}: {name} must hold class indices (integers)"
    if kind in _NOT_NUMBERS:
        sample = array.reshape(-1)[0] if array.size else None
        raise ArgumentTypeError(
            f"{what}, got {_NOT_NUMBERS[kind]} such as {_plain(sample)!r} (at {name}[0]); to train on class "
            f"names, number them first: names, {name} = np.unique({name}, return_inverse=True)")
    if kind == "b":
        raise ArgumentTypeError(f"{what}, got booleans; give the two classes as 0 and 1: {name}.astype(int)")
    xp = np if isinstance(array, np.ndarray) else _device_xp(array)
    if kind == "f":
        finite(where, name, array)
        fraction = array != xp.floor(array)
        if bool(fraction.any()):
            i = int(xp.argmax(fraction.reshape(-1)))
            raise ArgumentError(
                f"{what}, got {_plain(array.reshape(-1)[i])} at {name}[{_index(array.shape, i)}]; round them "
                "if they are classes, or compile with loss='mse' to predict numbers")
    if array.size and bool((array < 0).any()):
        i = int(xp.argmax((array < 0).reshape(-1)))
        raise ArgumentError(f"{where}: {name} must hold class indices >= 0, got "
                            f"{_plain(array.reshape(-1)[i])} at {name}[{_index(array.shape, i)}]")


def _device_xp(array: Any) -> Any:
    from .backends import backend_of

    return backend_of(array).xp


def _plain(value: Any) -> Any:
    """A NumPy (or CuPy) scalar as the Python value it holds, for messages: 0.7, not np.float64(0.7)."""
    return value.item() if hasattr(value, "item") else value


def _index(shape: tuple, flat: int) -> str:
    return ", ".join(str(int(i)) for i in np.unravel_index(flat, shape))
