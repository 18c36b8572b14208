"""How long a whole process takes to its first lecture-CNN training step: import, model, first step,
with Numba's cache empty and then filled (compile time is part of the product).

Each measurement is a fresh process; NUMBA_CACHE_DIR points at a new empty folder for the first
run of each round and stays for the second, so "empty" compiles every kernel the step needs and
"cached" loads them. ``--read-only`` also runs the cached case with the package's own folder
unwritable to the kernels' cache (Numba then uses the user-wide folder, here NUMBA_CACHE_DIR),
which is how an installed package runs. Times are printed, not asserted:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/first_step.py [--backend numba] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, sys, time
start = time.perf_counter()
import numpy as np
import autograd_cnn as ag
from autograd_cnn import models
imported = time.perf_counter()
ag.manual_seed(0)
model = models.lecture_cnn()
model.compile("rmsprop", "sparse_categorical_crossentropy")
built = time.perf_counter()
rng = np.random.default_rng(0)
x = rng.uniform(0, 1, size=(128, 1, 28, 28)).astype(np.float32)
y = rng.integers(0, 10, size=128)
model.fit(x, y, epochs=1, batch_size=128, verbose=0)
stepped = time.perf_counter()
print(json.dumps({"backend": ag.get_backend().name, "import": imported - start, "model": built - imported,
                  "first_step": stepped - built, "total": stepped - start}))
"""


def run_child(backend: str, cache_dir: str, timeout: float = 300) -> dict:
    """One fresh process, timed from inside and from outside (the interpreter's own start too)."""
    env = {**os.environ, "AUTOGRAD_CNN_BACKEND": backend, "NUMBA_CACHE_DIR": cache_dir}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"first_step: the child process failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numba")
    parser.add_argument("--runs", type=int, default=3, help="rounds of (empty cache, cached)")
    args = parser.parse_args()
    rows: dict[str, list[dict]] = {"empty cache": [], "cached": []}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as cache_dir:
            rows["empty cache"].append(run_child(args.backend, cache_dir))
            rows["cached"].append(run_child(args.backend, cache_dir))
    print(f"### A process to its first lecture-CNN step on {args.backend} (s; median of {args.runs} processes)\n")
    print("| Numba cache | process | import | model | first step (fit, 1 batch) | runs (process) |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, results in rows.items():
        med = {key: statistics.median(r[key] for r in results) for key in ("process", "import", "model", "first_step")}
        spread = ", ".join(f"{r['process']:.1f}" for r in results)
        print(f"| {name} | {med['process']:.1f} | {med['import']:.2f} | {med['model']:.2f} | "
              f"{med['first_step']:.2f} | {spread} |")


if __name__ == "__main__":
    main()
