"""Averaging gradients across processes while backward runs, and starting every process alike.

``GradientBuckets`` groups the parameters, last layer first (the order backward finishes
their gradients), into buckets of about ``bucket_mb`` megabytes. Each parameter's
post-accumulate hook copies its gradient into its bucket's flat buffer; when a bucket is
full, one non-blocking all-reduce starts on it while backward goes on with the layers below.
When the walk ends (``autograd.queue_callback``) every all-reduce is waited for, divided by
the number of processes and handed back to ``.grad``: all done before ``backward()`` returns.

Buckets start in their own order on every process, whatever order the hooks fire in: MPI
and NCCL match collectives by the order they are called.

Nothing here knows ``nn.Module``: ``DataParallel`` and ``fit`` both build on it.
"""
from __future__ import annotations

import time
import weakref
import zlib
from collections.abc import Iterable
from functools import partial
from typing import Any

import numpy as np

from .. import autograd
from ..errors import ArgumentError, DistributedError, shape_str
from ..tensor import Tensor
from .world import Pending, World, current

# The parameters some GradientBuckets averages, by id: a parameter is averaged once, never twice.
_averaged: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


class Bucket:
    """Parameters of one dtype and backend whose gradients travel in one flat buffer."""

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        self.bounds, start = [], 0
        for p in params:
            self.bounds.append((start, start + p.size))
            start += p.size
        self.numel = start
        self.xp, self.dtype = params[0].backend_object.xp, params[0].dtype
        self.reset()

    def reset(self) -> None:
        """Ready for the next backward: a fresh buffer (the last one now backs the .grad tensors)."""
        self.flat: Any = None
        self.arrived = [False] * len(self.params)
        self.count = 0
        self.pending: Pending | None = None

    def take(self, i: int, grad: Any) -> None:
        """Copy parameter ``i``'s finished gradient into its place in the buffer."""
        if self.flat is None:
            self.flat = self.xp.empty(self.numel, dtype=self.dtype)
        start, stop = self.bounds[i]
        self.flat[start:stop].reshape(grad.shape)[...] = grad
        if not self.arrived[i]:
            self.arrived[i] = True
            self.count += 1

    def fill_missing(self) -> None:
        """Zeros for the parameters whose gradient never came (unused by this process's forward)."""
        if self.flat is None:
            self.flat = self.xp.zeros(self.numel, dtype=self.dtype)
        for i, arrived in enumerate(self.arrived):
            if not arrived:
                start, stop = self.bounds[i]
                self.flat[start:stop] = 0
        self.count = len(self.params)

    def full(self) -> bool:
        return self.count == len(self.params)

    def describe(self, index: int, total: int) -> str:
        return f"gradient bucket {index + 1} of {total}: {self.numel:,} {self.dtype} values"


class GradientBuckets:
    """Average the gradients of ``params`` over all processes during every backward.

    ``bucket_mb``: the most megabytes of gradients in one all-reduce; smaller buckets start
    sooner (more overlap with backward), larger ones cost fewer messages. A parameter
    that got no gradient on a process counts as zero there. ``remove()`` takes the hooks off.
    """

    def __init__(self, params: Iterable[Tensor], bucket_mb: float = 25.0, call: str = "DataParallel",
                 world: World | None = None) -> None:
        if isinstance(bucket_mb, bool) or not isinstance(bucket_mb, (int, float)) or not bucket_mb > 0:
            raise ArgumentError(f"{call}: bucket_mb must be a number of megabytes above 0, got {bucket_mb!r}")
        self.world = world or current()
        self.call = call
        params = [p for p in params if p.requires_grad]
        twice = [p.name or shape_str(p.shape) for p in params if _averaged.get(id(p)) is p]
        if twice:
            raise DistributedError(f"{call}: parameters {', '.join(twice)} are averaged already (a model wrapped "
                                   "twice?); wrap a model once")
        self.buckets = _bucketed(params[::-1], bucket_mb * 2**20)  # backward finishes the last layer first
        self.next = 0  # the first bucket not yet started
        # What the all-reduces cost, summed over the backwards (``steps``) so far: the time they
        # were in flight, the part of it before the walk ended (hidden behind backward's own
        # work), and the time backward waited for them at its end.
        self.steps, self.in_flight_seconds, self.hidden_seconds, self.wait_seconds = 0, 0.0, 0.0, 0.0
        self.handles = []
        if self.world.size > 1:
            for bucket in self.buckets:
                for i, p in enumerate(bucket.params):
                    _averaged[id(p)] = p
                    self.handles.append(p.register_post_accumulate_grad_hook(partial(self._arrived, bucket, i)))

    @staticmethod
    def averaging(params: Iterable[Tensor]) -> bool:
        """True when every parameter that needs a gradient is averaged already (by a DataParallel)."""
        wanted = [p for p in params if p.requires_grad]
        return bool(wanted) and all(_averaged.get(id(p)) is p for p in wanted)

    def remove(self) -> None:
        """Take the hooks off: later backwards no longer average."""
        for handle in self.handles:
            handle.remove()
        for bucket in self.buckets:
            for p in bucket.params:
                if _averaged.get(id(p)) is p:
                    del _averaged[id(p)]
        self.handles = []

    def _arrived(self, bucket: Bucket, i: int, p: Tensor) -> None:
        """A parameter's gradient is complete: into its bucket; start the buckets that are full."""
        if autograd.queue_callback(self._finish):  # the first gradient of this backward
            self._begin()
        bucket.take(i, p.grad.data)
        if bucket.full():
            self._start_full()
        else:
            self.world.progress([b.pending for b in self.buckets[:self.next]])

    def _begin(self) -> None:
        """Forget what a backward that raised half-way may have left (its callback never ran)."""
        if self.next or any(b.flat is not None for b in self.buckets):
            for bucket in self.buckets:
                bucket.reset()
            self.next = 0

    def _start_full(self) -> None:
        """Start the all-reduce of each full bucket, in bucket order, as far as they are full."""
        while self.next < len(self.buckets) and self.buckets[self.next].full():
            bucket = self.buckets[self.next]
            bucket.pending = self.world.start_all_reduce(bucket.flat, "sum", self.call,
                                                         bucket.describe(self.next, len(self.buckets)))
            self.next += 1

    def _finish(self) -> None:
        """The end of backward: wait for every bucket, average, and hand the results to ``.grad``."""
        walk_end = time.perf_counter()
        for bucket in self.buckets[self.next:]:
            bucket.fill_missing()
        self._start_full()
        self.world.wait([bucket.pending for bucket in self.buckets])
        self.wait_seconds += time.perf_counter() - walk_end
        self.steps += 1
        for bucket in self.buckets:
            p = bucket.pending
            self.in_flight_seconds += p.finished - p.started
            self.hidden_seconds += max(0.0, min(p.finished, walk_end) - p.started)
            bucket.flat /= self.world.size
            for p, (lo, hi) in zip(bucket.params, bucket.bounds):
                p.grad = Tensor(bucket.flat[lo:hi].reshape(p.shape), p.backend_object)
            bucket.reset()
        self.next = 0


def _bucketed(params: list[Tensor], limit: float) -> list[Bucket]:
    """Consecutive parameters of one backend and dtype, up to ``limit`` bytes a bucket (one
    larger parameter gets a bucket of its own)."""
    buckets, group, size = [], [], 0
    for p in params:
        nbytes = p.size * p.dtype.itemsize
        other = group and (p.backend_object is not group[0].backend_object or p.dtype != group[0].dtype)
        if group and (size + nbytes > limit or other):
            buckets.append(Bucket(group))
            group, size = [], 0
        group.append(p)
        size += nbytes
    if group:
        buckets.append(Bucket(group))
    return buckets


def broadcast_state(tensors: dict[str, Tensor], call: str, world: World | None = None) -> None:
    """Give every process rank 0's values of ``tensors`` (a model's parameters and buffers, by
    name), in place; first check that every process holds the same names, shapes and dtypes."""
    world = world or current()
    if world.size == 1:
        return
    layout = ";".join(f"{name}:{shape_str(t.shape)}:{t.dtype}" for name, t in tensors.items())
    mine = np.array([zlib.crc32(layout.encode()), len(tensors)], dtype=np.int64)
    everyone = np.empty((world.size, 2), dtype=np.int64)
    world.wait([world.start_all_gather(mine, everyone, call, "the model's layout")])
    differ = [r for r in range(world.size) if everyone[r, 0] != everyone[0, 0]]
    if differ:
        raise DistributedError(f"{call} on {world.where()}: the processes hold different models (rank "
                               f"{differ[0]}'s parameters and buffers differ in names, shapes or dtypes from "
                               f"rank 0's {len(tensors)}); build the same model on every process")
    pending, copies = [], []
    for name, t in tensors.items():
        array = t.data if t.data.flags.c_contiguous else t.backend_object.xp.ascontiguousarray(t.data)
        if array is not t.data:
            copies.append((t, array))
        pending.append(world.start_broadcast(array, 0, call, f"{name}, {t.dtype} {shape_str(t.shape)}"))
    world.wait(pending)
    for t, array in copies:
        t.data[...] = array


class Replicas:
    """What ``fit`` does to a model under several processes: rank 0's parameters and buffers
    on every process, and gradients averaged from then on, until ``remove()``."""

    def __init__(self, named: dict[str, Tensor], params: list[Tensor], call: str) -> None:
        broadcast_state(named, call)
        # A model wrapped in DataParallel averages its gradients itself.
        self.buckets = None if GradientBuckets.averaging(params) else GradientBuckets(params, call=call)

    def remove(self) -> None:
        if self.buckets is not None:
            self.buckets.remove()
