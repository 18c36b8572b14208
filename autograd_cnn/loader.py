"""``DataLoader``: mini-batches of ``(x, y)`` as tensors on the active backend, shuffled, sharded
among the processes of a job, and augmented by ``transforms`` (``data`` names it too)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from . import checks, transforms
from .errors import ArgumentError, ArgumentTypeError, ShapeError
from .given import samples


class DataLoader:
    """Mini-batches of ``(x, y)`` (or of ``x`` alone) as tensors on the active backend.

    ``x`` and ``y`` are NumPy arrays or tensors with the same first dimension. Each pass
    shuffles anew when ``shuffle`` is set: with its own generator when ``seed`` is given,
    else with the one ``ag.manual_seed`` seeds. The last batch may be smaller unless
    ``drop_last``.

    ``shard=True`` (data-parallel training under ``mpiexec``): every process iterates its own
    equal part of each pass's permutation, the same permutation on every process (from
    ``seed``, or drawn on rank 0 and sent). Process r takes entries r, r + k, r + 2k, ... of
    it, wrapping around to the start so that every process gets the same count and runs the
    same number of steps (with ``drop_last`` the incomplete last row of k is left out instead).
    In a world of one process it changes nothing.

    ``transform`` (``data.transforms``, or any callable taking and returning a batch tensor
    (N, C, H, W)) augments each batch of x on the active backend, its random draws taken from
    the loader's generator: with ``seed`` the same augmented batches on every run.
    """

    def __init__(self, x: Any, y: Any = None, batch_size: int = 32, shuffle: bool = True,
                 seed: int | None = None, drop_last: bool = False, shard: bool = False,
                 transform: Any = None) -> None:
        self.x = _host_array(samples("DataLoader", "x", x))
        self.y = None if y is None else _host_array(samples("DataLoader", "y", y))
        if self.y is not None and len(self.y) != len(self.x):
            raise ShapeError(f"DataLoader: x has {len(self.x)} rows but y has {len(self.y)}; "
                             "they must pair up one to one")
        self.batch_size = checks.integer("DataLoader", "batch_size", batch_size, minimum=1)
        self.shuffle = checks.flag("DataLoader", "shuffle", shuffle)
        self.drop_last = checks.flag("DataLoader", "drop_last", drop_last)
        self.shard = checks.flag("DataLoader", "shard", shard)
        if transform is not None and not callable(transform):
            raise ArgumentTypeError(f"DataLoader: transform must be a data.transforms object or a callable "
                                    f"taking a batch, got {type(transform).__name__}")
        self.transform, self._transform_rng = transform, None
        if seed is not None and not (checks.is_int(seed) and seed >= 0):
            kind = ArgumentError if checks.is_int(seed) else ArgumentTypeError
            raise kind(f"DataLoader: seed must be None or an int >= 0, got {seed!r}")
        self._rng = np.random.default_rng(seed) if seed is not None else None
        if self.drop_last and len(self) == 0:  # every pass would yield nothing, silently
            rows = self._rows()
            held = f"x holds {rows} samples" if rows == len(self.x) else \
                f"each process takes {rows} of the {len(self.x)} samples"
            raise ArgumentError(f"DataLoader: drop_last=True leaves no batch: {held}, fewer than batch_size="
                                f"{self.batch_size}; use a batch_size of at most {max(rows, 1)} or drop_last=False")

    def _rows(self) -> int:
        """How many samples this process iterates per pass."""
        n = len(self.x)
        if not self.shard:
            return n
        from .distributed import world

        k = world.world_size()
        return n // k if self.drop_last else -(-n // k)

    def __len__(self) -> int:
        n = self._rows()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> np.ndarray | None:
        """The rows this pass takes, in order; None for all of them as they lie."""
        from . import random

        n = len(self.x)
        if not self.shard:
            return (self._rng or random.host_rng()).permutation(n) if self.shuffle else None
        from .distributed import sharding, world

        group = world.current()
        if not self.shuffle:
            order = np.arange(n)
        elif self._rng is not None:  # the same seed on every process: the same permutation
            order = self._rng.permutation(n)
        else:
            order = sharding.common_permutation(n, random.host_rng(), group)
        return sharding.strided_part(order, group, drop=self.drop_last)

    def __iter__(self) -> Iterator[Any]:
        from .backends import get_backend
        from .tensor import Tensor

        backend = get_backend()
        order = self._order()
        for i in range(len(self)):
            index = slice(i * self.batch_size, (i + 1) * self.batch_size)
            rows = order[index] if order is not None else index
            xb = Tensor(backend.from_host(np.ascontiguousarray(self.x[rows])), backend)
            if self.transform is not None:
                xb = self._augmented(xb)
            if self.y is None:
                yield xb
            else:
                yield xb, Tensor(backend.from_host(np.ascontiguousarray(self.y[rows])), backend)


    def _augmented(self, xb: Any) -> Any:
        from . import random

        if self._transform_rng is None and self._rng is not None:
            # a stream of its own, spawned from the seed: augmenting leaves the batches' order as it was
            self._transform_rng = self._rng.spawn(1)[0]
        rng = self._transform_rng or random.host_rng()
        if isinstance(self.transform, transforms.Transform):
            return self.transform(xb, rng=rng)
        return self.transform(xb)


def _host_array(a: Any) -> np.ndarray:
    """A NumPy array from a host or device array; batches move to the backend one at a time."""
    if isinstance(a, np.ndarray):
        return a
    from .backends import backend_of

    return backend_of(a).to_host(a)
