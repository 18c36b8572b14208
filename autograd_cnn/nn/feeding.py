"""How x and y reach a model in ``fit``, ``evaluate``, ``predict`` and ``train_on_batch``: checked,
split into mini-batches on the model's backend and dtype (``Batches``), shared out among the
processes of a job, and for a Keras model of several inputs, one array per input.

The Trainer (``training.py``) runs the loop; this file only feeds it.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import checks
from ..backends import backend_of, get_backend
from ..data import finite, samples
from ..errors import ArgumentError, ShapeError, shape_str
from ..random import host_rng
from ..tensor import Tensor


def current_world() -> Any:
    """The job's processes (one under plain python; mpi4py is not loaded then)."""
    from ..distributed import world

    return world.current()


class Alone:
    """One process's view of the world: for data that is not shared out among the processes."""

    size, rank = 1, 0


def input_parts(op: str, model: Any, x: Any) -> list | None:
    """For a model that takes several inputs (a Keras functional model with several ``Input``s),
    x's arrays in the model's input order: x a list or tuple of one array per input, or a dict by
    input name, as in Keras. None for a model of one input (x is then one array)."""
    names = getattr(model, "input_names", None)
    if not names or len(names) == 1:
        return None
    listing = ", ".join(names)
    if isinstance(x, dict):
        missing, unknown = [n for n in names if n not in x], [k for k in x if k not in names]
        if missing or unknown:
            raise ArgumentError(f"{op}: the model's inputs are {listing}; x "
                                + (f"lacks {', '.join(map(str, missing))}" if missing else "")
                                + (" and " if missing and unknown else "")
                                + (f"has no input named {', '.join(map(repr, unknown))}" if unknown else ""))
        return [x[n] for n in names]
    if isinstance(x, (list, tuple)) and len(x) == len(names):
        return list(x)
    got = f"a {type(x).__name__} of {len(x)}" if isinstance(x, (list, tuple)) else type(x).__name__
    raise ArgumentError(f"{op}: the model takes {len(names)} inputs ({listing}): pass x as a list of "
                        f"{len(names)} arrays in that order, or a dict by input name; got {got}")


def _named_parts(op: str, model: Any, x: Any) -> tuple[bool, list[tuple[str, Any]]]:
    """Whether the model takes several inputs, and (name for messages, array) for each of them:
    ("x", x) alone for a model of one input."""
    parts = input_parts(op, model, x)
    if parts is None:
        return False, [("x", x)]
    return True, [(f"x[{name!r}]", part) for name, part in zip(model.input_names, parts)]


def batch_count(op: str, model: Any, x: Any) -> int:
    """How many samples x holds (its first input's, for a model of several inputs); at least 1."""
    parts = input_parts(op, model, x)
    return max(len(samples(op, "x", x if parts is None else parts[0])), 1)


def split_off(op: str, model: Any, x: Any, y: Any, fraction: float) -> tuple[Any, Any, tuple]:
    """(x, y) without their last ``fraction``, and that fraction as validation data (Keras's
    validation_split: the split falls before shuffling). For a model of several inputs, each
    input's array is split so."""
    several, named = _named_parts(op, model, x)
    parts = [samples(op, name, part) for name, part in named]
    y = samples(op, "y", y)
    n = len(y)
    keep = int(math.floor(n * (1.0 - fraction)))
    if keep == 0 or keep == n:
        raise ArgumentError(f"{op}: validation_split={fraction} of {n} samples leaves "
                            f"{'no training' if keep == 0 else 'no validation'} samples; use a fraction that "
                            "leaves both at least one")
    if not several:
        return parts[0][:keep], y[:keep], (parts[0][keep:], y[keep:])
    return [p[:keep] for p in parts], y[:keep], ([p[keep:] for p in parts], y[keep:])


class Batches:
    """x (and y) split into mini-batches that land on the model's backend and dtype.

    Under several processes each takes its part: for fit, every k-th sample of the epoch's
    common permutation (equal counts, so every process runs the same steps); for evaluate and
    predict, one contiguous share, which ``joined`` puts back together.
    """

    def __init__(self, model: Any, x: Any, y: Any, batch_size: int, op: str, sparse: bool, world: Any,
                 training: bool) -> None:
        param = next(iter(model.parameters()), None)
        self.backend = param.backend_object if param is not None else get_backend()
        self.dtype = param.dtype if param is not None else np.dtype("float32")
        batch_size = checks.integer(op, "batch_size", batch_size, minimum=1)
        # One source per model input: x itself, or for a model of several inputs each of x's arrays.
        self.several, named = _named_parts(op, model, x)
        self.xs = [_source(op, name, part) for name, part in named]
        self.x, self.x_backend = self.xs[0]
        self.y, self.y_backend = _source(op, "y", y, sparse) if y is not None else (None, None)
        n = len(self.x)
        for (name, _), (part, _) in zip(named, self.xs):
            if len(part) != n:
                raise ShapeError(f"{op}: every input must hold the same number of samples, got "
                                 f"{shape_str(self.x.shape)} for the first and {shape_str(part.shape)} for {name}")
        if self.y is not None and len(self.y) != n:
            raise ShapeError(f"{op}: x and y must hold the same number of samples, got x "
                             f"{shape_str(self.x.shape)} and y {shape_str(self.y.shape)}")
        if n == 0:
            raise ShapeError(f"{op}: x holds no samples")
        self.n, self.batch_size, self.world, self.op, self.training = n, batch_size, world, op, training
        if training:
            self.start, self.rows = 0, math.ceil(n / world.size)
        else:
            from ..distributed import sharding

            self.start, stop = sharding.contiguous_part(n, world)
            self.rows = stop - self.start
        self.steps = math.ceil(self.rows / batch_size)
        self.sparse = sparse  # y holds class indices: they stay integers

    def batches(self, shuffle: bool) -> Iterator[tuple[Tensor, Tensor | None]]:
        order = self._order(shuffle)
        for start in range(0, self.rows, self.batch_size):
            index = slice(self.start + start, self.start + min(start + self.batch_size, self.rows)) \
                if order is None else order[start:start + self.batch_size]
            xb = [self._take(part, backend, index, "x") for part, backend in self.xs]
            yield xb if self.several else xb[0], \
                self._take(self.y, self.y_backend, index, "y") if self.y is not None else None

    def _order(self, shuffle: bool) -> np.ndarray | None:
        """The sample indices this process takes, in order; None for its contiguous share as it lies."""
        if self.world.size == 1 or not self.training:
            return host_rng().permutation(self.n) if shuffle else None
        from ..distributed import sharding

        order = sharding.common_permutation(self.n, host_rng(), self.world) if shuffle else np.arange(self.n)
        return sharding.strided_part(order, self.world)

    def joined(self, part: Any) -> Any:
        """Every process's share of a result (predict's outputs), back in the order of the samples."""
        if self.world.size == 1:
            return part
        from ..distributed import sharding

        return sharding.gather_parts(part, self.n, self.world, self.op)

    def _take(self, source: Any, backend: Any, index: Any, which: str) -> Tensor:
        if not isinstance(index, slice) and backend is not None and backend.name != "numpy":
            index = backend.asarray(index)
        batch = source[index]
        if backend is not None and backend is not self.backend:  # tensors on another backend
            batch = backend.to_host(batch)
        batch = self.backend.asarray(batch)
        if which == "x" or not self.sparse:
            if batch.dtype != self.dtype and (batch.dtype.kind in "fiub"):
                batch = batch.astype(self.dtype)
        elif batch.dtype.kind != "i":
            batch = batch.astype(self.backend.xp.int64)  # class indices for cross-entropy
        return Tensor(batch, self.backend)


def _source(op: str, name: str, data: Any, labels: bool = False) -> tuple[Any, Any]:
    """(array, its backend) for a tensor or a CuPy array; (NumPy array, None) for anything else.
    Checked first: numbers with a first axis of samples, finite, and class indices for ``labels``."""
    array = samples(op, name, data, labels)
    if name.startswith("x") and array.ndim < 2:  # a layer would take (N,) as one sample of N numbers
        raise ArgumentError(f"{op}: x must have a first axis of samples and at least one more, got shape "
                            f"{shape_str(array.shape)}; for one number per sample use x.reshape(-1, 1)")
    finite(op, name, array)
    return array, None if isinstance(array, np.ndarray) else backend_of(array)


def raw_pixels(data: Batches) -> bool:
    """Whether x holds integers in 0..255 (beyond 0 and 1) for a model that computes in floats."""
    x = data.x
    if x.dtype.kind not in "ui" or data.dtype.kind != "f" or x.size == 0:
        return False
    return 0 <= float(x.min()) and 1 < float(x.max()) <= 255
