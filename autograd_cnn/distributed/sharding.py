"""Which samples each process takes.

Training: every epoch's permutation is the same on every process (drawn on rank 0 and sent),
and process r takes its entries r, r + k, r + 2k, ... So at each step the k processes together
hold k consecutive batches' worth of the permutation, the samples one process with a k times
larger batch would hold: averaging their gradients gives its gradient.

Evaluation and prediction: each process takes one contiguous part, and the parts are put back
together in order.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .world import World


def common_permutation(n: int, rng: np.random.Generator, world: World) -> np.ndarray:
    """``rng.permutation(n)`` as rank 0 draws it, on every process (each draws too, so every
    process's generator stays where a lone process's would be)."""
    order = rng.permutation(n)
    if world.size > 1:
        world.wait([world.start_broadcast(order, 0, "shuffling the samples", f"a permutation of {n:,}")])
    return order


def strided_part(order: np.ndarray, world: World, drop: bool = False) -> np.ndarray:
    """This process's entries of ``order``: every k-th from its rank. The processes get equal
    counts, so they run the same number of steps: the order wraps around to fill the last
    row of k (a few samples are seen twice an epoch), or with ``drop`` that row is left out."""
    k = world.size
    if k == 1:
        return order
    rows = len(order) // k if drop else math.ceil(len(order) / k)
    padded = np.resize(order, rows * k)  # np.resize repeats from the start
    return padded[world.rank::k]


def contiguous_part(n: int, world: World) -> tuple[int, int]:
    """(start, stop) of this process's share of ``n`` samples for evaluation and prediction."""
    if world.size == 1 or n < world.size:  # too few to share: every process takes them all
        return 0, n
    return world.rank * n // world.size, (world.rank + 1) * n // world.size


def gather_parts(part: Any, n: int, world: World, call: str) -> Any:
    """Every process's ``contiguous_part`` of an array, joined in order into all ``n`` rows."""
    if world.size == 1 or n < world.size:
        return part
    xp = np if isinstance(part, np.ndarray) else _xp_of(part)
    longest = math.ceil(n / world.size)
    padded = xp.zeros((longest, *part.shape[1:]), dtype=part.dtype)
    padded[:len(part)] = part
    everyone = xp.empty((world.size, *padded.shape), dtype=part.dtype)
    world.wait([world.start_all_gather(padded, everyone, call, f"{len(part)} of {n} rows of {part.dtype}")])
    pieces = []
    for r in range(world.size):
        start, stop = r * n // world.size, (r + 1) * n // world.size
        pieces.append(everyone[r, :stop - start])
    return xp.concatenate(pieces, axis=0)


def _xp_of(array: Any) -> Any:
    from ..backends import backend_of

    return backend_of(array).xp
