"""Two processes on one machine against one: ``autograd-cnn train`` as a user runs it, alone and
under ``mpiexec -n 2``, with no thread variable set (the processes must share the cores themselves).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/processes.py [--quick] [--source DIR]

The command: ``train --model lecture-cnn --dataset sample --epochs 2`` (``--quick``: 1 epoch,
``--limit 1000``). Runs are taken in turn, one process then two, round after round, so both see
the same drift of a shared machine; the figure is each one's wall time (start to exit, the
imports and the data included) and the ratio two / one (1.00x: two processes take as long as
one for the same epochs; they each take half of every epoch's samples). ``--source`` runs the
package from another checkout (an older commit, for a before-and-after). There is no PyTorch
counterpart: the comparison is of two ways of running our own command.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import machine

HERE = Path(__file__).resolve().parent
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "AUTOGRAD_CNN_THREADS",
                    "NUMBA_NUM_THREADS")


def timed(command: list[str], env: dict, cwd: str, timeout: float) -> float:
    """Wall seconds of one run; the run is ended by its pid past ``timeout``."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch of 1,000 images, 2 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="default: 3 (2 with --quick)")
    parser.add_argument("--source", default=str(HERE.parent), help="the checkout whose package runs")
    args = parser.parse_args()
    mpiexec = next((str(p) for p in [Path(sys.executable).parent / "mpiexec"] if p.exists()), shutil.which("mpiexec"))
    if mpiexec is None:
        print("processes: skipped: no mpiexec (pip install 'autograd-cnn[mpi]')")
        return 0
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([args.source, env.get("PYTHONPATH", "")])
    train = [sys.executable, "-m", "autograd_cnn", "train", "--model", "lecture-cnn", "--dataset", "sample",
             "--epochs", "1" if args.quick else "2", *(["--limit", "1000"] if args.quick else [])]
    rounds = args.rounds or (2 if args.quick else 3)
    one, two = [], []
    for _ in range(rounds):
        # From the source folder: python -m puts the current folder first on the path.
        one.append(timed(train, env, args.source, 600))
        two.append(timed([mpiexec, "-n", "2", *train], env, args.source, 600))
    print(machine())
    print(f"source: {args.source}; {' '.join(train[3:])}; {rounds} rounds, one then two in each; "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print(f"one process:      {', '.join(f'{t:.1f}' for t in one)} s (median {statistics.median(one):.1f})")
    print(f"mpiexec -n 2:     {', '.join(f'{t:.1f}' for t in two)} s (median {statistics.median(two):.1f})")
    print(f"two / one:        {statistics.median(two) / statistics.median(one):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
