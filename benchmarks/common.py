"""Shared helpers for the benchmarks: timing, PyTorch lookup, machine description.

Every figure is a ratio against PyTorch CPU measured in the same run on the same machine.
Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, as on a user's machine:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE make bench
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def torch_or_none() -> Any:
    """PyTorch where installed, else None (ratios are then skipped, never invented)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def limit_threads(torch: Any, threads: int | None) -> None:
    """Run both frameworks on the same number of threads (a busy machine: 1 is steadier)."""
    if threads is None:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    if torch is not None:
        torch.set_num_threads(threads)


def median_time(fn: Callable[[], Any], repeat: int = 20, warmup: int = 3,
                sync: Callable[[], None] | None = None) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` untimed calls."""
    return paired_median_times(fn, None, repeat, warmup, sync, rounds=1)[0]


def paired_median_times(ours: Callable[[], Any], theirs: Callable[[], Any] | None, repeat: int = 20,
                        warmup: int = 2, sync: Callable[[], None] | None = None,
                        their_sync: Callable[[], None] | None = None, rounds: int = 4) -> tuple[float, float | None]:
    """Median wall times (s) of ``ours()`` and ``theirs()``, timed in alternating blocks.

    A machine's speed can drift within minutes (a virtual machine's especially), so the
    ``repeat`` calls of each are split into ``rounds`` blocks taken in turn, and both see
    the same drift. Each block starts
    with ``warmup`` untimed calls: after a switch the other framework's thread pool still
    spins on the cores for a while (OpenBLAS and OpenMP both busy-wait for work), and
    calls taken then would time the two pools fighting, not either framework.
    ``theirs`` None (no PyTorch) gives None for its time.
    """
    runs = [(ours, sync, [])] + ([(theirs, their_sync, [])] if theirs is not None else [])
    per_round = max(1, -(-repeat // rounds))
    for _ in range(rounds):
        for fn, fn_sync, times in runs:
            for _ in range(warmup):
                fn()
            if fn_sync:
                fn_sync()
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                if fn_sync:
                    fn_sync()
                times.append(time.perf_counter() - start)
    medians = [statistics.median(times) for _, _, times in runs]
    return medians[0], (medians[1] if theirs is not None else None)


def gemm_peak(n: int = 2048, repeat: int = 7) -> float:
    """NumPy's float32 GEMM speed on an n x n product (GFLOP/s, the best of ``repeat``): BLAS at
    its own thread count, the machine's practical limit for the arithmetic of a step."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n ** 3 / best / 1e9


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine() -> str:
    """One line naming the machine, Python, NumPy, BLAS and the OpenBLAS variables."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = "unknown BLAS"
    try:
        from threadpoolctl import threadpool_info

        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            p = pools[0]
            blas = (f"{p.get('internal_api')} {p.get('version')} kernel={p.get('architecture')} "
                    f"threads={p.get('num_threads')}")
    except ImportError:
        pass
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env_text = ", ".join(f"{k}={'unset' if v is None else v}" for k, v in env.items())
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; "
            f"NumPy {np.__version__}; {blas}; {env_text}")


def report(rows: list[tuple[str, float, float | None]], title: str, theirs: str = "PyTorch CPU") -> str:
    """A Markdown table of (case, ours in ms, PyTorch in ms or None) with the ratio."""
    lines = [f"### {title}", "", f"| case | autograd_cnn (ms) | {theirs} (ms) | ratio |",
             "| --- | ---: | ---: | ---: |"]
    for name, ours, theirs in rows:
        ratio = f"{ours / theirs:.2f}x" if theirs else "n/a"
        theirs_text = f"{theirs * 1e3:.2f}" if theirs else "not installed"
        lines.append(f"| {name} | {ours * 1e3:.2f} | {theirs_text} | {ratio} |")
    text = "\n".join(lines)
    print(text)
    sys.stdout.flush()
    return text
