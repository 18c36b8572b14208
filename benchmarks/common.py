"""Shared helpers for the benchmarks: timing, PyTorch lookup, machine description.

Every figure is a ratio against PyTorch CPU measured in the same run on the same machine.
``solo_in_turn`` times each framework alone in a process of its own, the processes taken in
turn: in one process, PyTorch's and OpenBLAS's thread pools spin against each other on the
same cores and distort both figures. Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset,
as on a user's machine:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE make bench
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
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


def slides_convnet(keras: Any, softmax: bool = True) -> Any:
    """The slides' convnet (104,202 parameters), written as on the slides, with either Keras: ours
    (``autograd_cnn.keras``) or the real one; ``softmax=False`` ends in logits."""
    layers = keras.layers
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(filters=32, kernel_size=3, activation="relu")(inputs)
    x = layers.MaxPool2D(pool_size=2)(x)
    x = layers.Conv2D(filters=64, kernel_size=3, activation="relu")(x)
    x = layers.MaxPool2D(pool_size=2)(x)
    x = layers.Conv2D(filters=128, kernel_size=3, activation="relu")(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax" if softmax else None)(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def module_step(model: Any, optimizer: Any, x0: np.ndarray, y0: np.ndarray) -> Callable[[], Any]:
    """One training step of one of our models on a fixed batch: cross-entropy, backward, update."""
    import autograd_cnn as ag
    import autograd_cnn.functional as F

    x, y = ag.tensor(x0), ag.tensor(y0)

    def step() -> Any:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss
    return step


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


# --------------------------------------------------------------------------- solo processes

FRAMEWORKS = ("ours", "torch")

#: glibc's malloc told to keep freed memory, as the NumPy backend tells it in our own process
#: (``keep_freed_memory``): a PyTorch process run with these variables gets the same help.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


#: ``solo_frameworks``'s name for PyTorch run with KEEP_FREED_MEMORY, and how the report names it.
MALLOC_KEPT = "torch, malloc kept"
VARIANT_NAMES = {MALLOC_KEPT: "PyTorch with malloc keeping freed memory"}


def add_solo_arguments(parser: argparse.ArgumentParser, runs: int = 5,
                       frameworks: Sequence[str] = FRAMEWORKS) -> None:
    """The options of a script timed by ``solo_in_turn``: ``--runs`` for the user, and the
    hidden ``--solo``/``--case`` that the parent passes to each child process (``--solo`` one
    of ``frameworks``)."""
    parser.add_argument("--runs", type=int, default=runs,
                        help="processes per framework and case, taken in turn (the figure is their median)")
    parser.add_argument("--solo", choices=frameworks, help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)


def solo_child(step: Callable[[], Any], repeat: int, warmup: int = 5,
               sync: Callable[[], None] | None = None) -> None:
    """In a child process: time ``repeat`` calls of ``step`` after ``warmup`` untimed ones, and
    print their median (seconds) as the last line, in JSON, for ``solo_in_turn``."""
    print(json.dumps({"median": median_time(step, repeat, warmup, sync)}))


def solo_in_turn(script: str, cases: Sequence[str], runs: int, who: dict[str, tuple[str, dict]],
                 extra: Sequence[str] = (), details: dict | None = None) -> dict[tuple[str, str], list[float]]:
    """Each case of ``script`` run by each of ``who`` alone in its own process, ``runs`` rounds of
    processes taken in turn. ``who`` maps a name to (the framework, for ``--solo``; variables
    added to the child's environment). Returns {(case, name): [each process's median step time (s)]};
    ``details``, when given, gets {(case, name): [each process's whole JSON line]} (peak memory...)."""
    results: dict[tuple[str, str], list[float]] = {(case, name): [] for case in cases for name in who}
    for _ in range(runs):
        for case in cases:
            for name, (framework, env) in who.items():
                command = [sys.executable, script, "--solo", framework, "--case", case, *extra]
                done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                                      env={**os.environ, **env})
                if done.returncode != 0:
                    raise SystemExit(f"{script} --solo {framework} --case {case} failed "
                                     f"(exit {done.returncode}):\n{done.stderr[-2000:]}")
                line = json.loads(done.stdout.strip().splitlines()[-1])
                results[(case, name)].append(line["median"])
                if details is not None:
                    details.setdefault((case, name), []).append(line)
    return results


def solo_frameworks(with_torch: bool, malloc_kept: bool = True) -> dict[str, tuple[str, dict]]:
    """``who`` for ``solo_in_turn``: ours; PyTorch as installed; and, with ``malloc_kept``,
    PyTorch with glibc's malloc keeping freed memory as our process does (without PyTorch,
    ours alone)."""
    who = {"ours": ("ours", {})}
    if with_torch:
        who["torch"] = ("torch", {})
        if malloc_kept:
            who[MALLOC_KEPT] = ("torch", KEEP_FREED_MEMORY)
    return who


def spread(times: Sequence[float]) -> float:
    """How far apart runs are: (slowest - fastest) / median."""
    return (max(times) - min(times)) / statistics.median(times)


def solo_report(results: dict[tuple[str, str], list[float]], names: dict[str, str], title: str,
                unit: str = "ms") -> str:
    """A Markdown table of ``solo_in_turn``'s results (seconds): per case and PyTorch variant, our
    median over our processes and PyTorch's (in ``unit``, "ms" or "s"), the fastest and slowest
    process, the spread and the ratio of the medians."""
    factor = 1e3 if unit == "ms" else 1.0
    lines = [f"### {title}", "",
             f"| case | autograd_cnn ({unit}) | its runs ({unit}) | spread | PyTorch CPU ({unit}) | its runs ({unit}) "
             "| spread | ratio |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    variants = list(dict.fromkeys(name for _, name in results if name != "ours")) or [None]  # in ``who``'s order
    for case, case_name in names.items():
        for variant in variants:
            cells, medians = [], []
            for name in ("ours", variant):
                times = results.get((case, name), [])
                if not times:
                    cells += ["not installed", "", ""]
                    continue
                medians.append(statistics.median(times))
                cells += [f"{medians[-1] * factor:.2f}", f"{min(times) * factor:.2f} to {max(times) * factor:.2f}",
                          f"{spread(times):.0%}"]
            ratio = f"{medians[0] / medians[1]:.2f}x" if len(medians) == 2 else "n/a"
            label = case_name if variant in (None, "torch") else \
                f"{case_name}; {VARIANT_NAMES.get(variant, variant)}"
            lines.append(f"| {label} | {' | '.join(cells)} | {ratio} |")
    runs = max(len(v) for v in results.values())
    lines += ["", f"Each framework alone in its own process, {runs} processes each, taken in turn; a process's "
              "figure is the median of its timed calls."]
    if MALLOC_KEPT in variants:
        lines[-1] += (" \"PyTorch with malloc keeping freed memory\": its process run with MALLOC_MMAP_THRESHOLD_ "
                      "and MALLOC_TRIM_THRESHOLD_ at 1 GiB, the setting our numba backend makes in its own "
                      "process (AUTOGRAD_CNN_CACHE_MEMORY).")
    text = "\n".join(lines)
    print(text)
    sys.stdout.flush()
    return text
