"""The gradient-check table's row type. Each ``grad_cases_*.py`` module lists ``CASES``."""
from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Case:
    """One gradcheck row.

    ``fn`` takes the float inputs (made from ``shapes``, uniform in ``domain``) and then
    the extra, non-differentiable arguments that ``extra(rng, backend)`` returns.
    ``dodge`` moves raw inputs off kinks (relu at 0, max ties).
    """
    name: str
    fn: Callable
    shapes: list
    domain: tuple = (-2.0, 2.0)
    dodge: Callable | None = None
    extra: Callable | None = None
    double: bool = True
    atol: float = 1e-5
    rtol: float = 1e-3
    tags: tuple = field(default_factory=tuple)

    def arrays(self) -> list:
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        lo, hi = self.domain
        arrays = [rng.uniform(lo, hi, size=s) for s in self.shapes]
        if self.dodge is not None:
            arrays = self.dodge(arrays, rng)
        return arrays

    def extras(self, backend: Any) -> list:
        if self.extra is None:
            return []
        rng = np.random.default_rng(7)
        return list(self.extra(rng, backend))


def away_from(values: float | list, gap: float = 0.05) -> Callable:
    """A dodge: nudge every element at least ``gap`` away from the given kink(s)."""
    kinks = [values] if isinstance(values, (int, float)) else list(values)

    def dodge(arrays: list, rng: Any) -> list:
        out = []
        for a in arrays:
            a = np.array(a)
            for k in kinks:
                close = np.abs(a - k) < gap
                a[close] = k + np.where(a[close] >= k, gap, -gap) * 2
            out.append(a)
        return out
    return dodge


def distinct(arrays: list, rng: Any) -> list:
    """A dodge: make all values, across every input, distinct and well apart (no ties)."""
    total = sum(a.size for a in arrays)
    values = rng.permutation(total).astype(np.float64) / max(total, 1) * 4 - 2
    out, start = [], 0
    for a in arrays:
        out.append(values[start:start + a.size].reshape(a.shape))
        start += a.size
    return out
