"""Data-parallel training of the lecture CNN on 1 and 2 processes, against PyTorch's
DistributedDataParallel (gloo) in the same run: samples per second, and what the all-reduce costs.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/distributed.py [--quick]

Each framework trains in processes of its own (ours under mpiexec; PyTorch's started by
mpiexec too, joined over TCP by gloo), every process on one BLAS thread (OMP_NUM_THREADS=1,
OPENBLAS_NUM_THREADS=1, torch.set_num_threads(1)), float32, batch 128 per process, RMSprop
with Keras's settings. The runs are taken in turn, round after round, so both frameworks see
the same drift of a shared machine; each figure is the median over the rounds.

1 process is the plain training step (no wrapper); 2 processes wrap the model (our
``DataParallel``, PyTorch's ``DistributedDataParallel``) and give each its own batch, so
perfect scaling doubles the samples per second.

The all-reduce: its time alone (a blocking all-reduce of every gradient at once, after the
training); its time in flight during training, from each bucket's start to its end (waiting
for the slower process included), and the part of that before backward's walk ended (hidden
behind backward); and the time backward waited for it at its end. With the default 25 MB
bucket the lecture CNN's 0.4 MB of gradients travel in one bucket, which can start only
after the last gradient: nothing to hide. A run with 0.1 MB buckets shows the overlap.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import machine

BATCH = 128
LR, ALPHA, EPS = 1e-3, 0.9, 1e-7
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SMALL_BUCKET_MB = 0.1


def launcher_rank_size() -> tuple[int, int]:
    """This process's rank and the job's size as mpiexec gave them (0, 1 without mpiexec)."""
    for rank, size in (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE")):
        if size in os.environ:
            return int(os.environ[rank]), int(os.environ[size])
    return 0, 1


def batch(rank: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(rank)
    return rng.uniform(0, 1, size=(BATCH, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, size=BATCH)


# --------------------------------------------------------------------------- the workers


def worker_ours(steps: int, warmup: int, bucket_mb: float) -> dict:
    import autograd_cnn as ag
    import autograd_cnn.functional as F
    from autograd_cnn import distributed as dist
    from autograd_cnn import models, optim
    from autograd_cnn.distributed import world

    ag.manual_seed(0)
    model = models.lecture_cnn(softmax=False)
    k = dist.world_size()
    trained = dist.DataParallel(model, bucket_mb=bucket_mb) if k > 1 else model
    opt = optim.RMSprop(trained.parameters(), lr=LR, alpha=ALPHA, eps=EPS)
    x0, y0 = batch(dist.rank())
    x, y = ag.tensor(x0), ag.tensor(y0)

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(trained(x), y).backward()
        opt.step()

    wall, cpu = timed_steps(step, dist.barrier, steps, warmup)
    result = {"step_s": statistics.median(wall), "cpu_s": statistics.median(cpu), "processes": k}
    if k > 1:
        buckets = trained.buckets  # its figures cover warm-up and timed steps alike
        result.update(waited_s=buckets.wait_seconds / buckets.steps, in_flight_s=buckets.in_flight_seconds /
                      buckets.steps, hidden=buckets.hidden_seconds / buckets.in_flight_seconds,
                      buckets=len(buckets.buckets))
        group = world.current()
        flat = np.zeros(sum(p.size for p in model.parameters()), dtype=np.float32)
        alone = []
        for _ in range(max(10, steps)):
            dist.barrier()
            start = time.perf_counter()
            group.wait([group.start_all_reduce(flat, "sum", "benchmark", "every gradient")])
            alone.append(time.perf_counter() - start)
        result["alone_s"] = statistics.median(alone)
    return result


def worker_torch(steps: int, warmup: int, port: int) -> dict:
    import torch
    import torch.distributed as tdist
    from torch import nn

    torch.set_num_threads(1)
    rank, k = launcher_rank_size()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Flatten(), nn.Linear(1152, 10))
    barrier = lambda: None  # noqa: E731
    if k > 1:
        tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=k)
        model = nn.parallel.DistributedDataParallel(model)
        barrier = tdist.barrier
    opt = torch.optim.RMSprop(model.parameters(), lr=LR, alpha=ALPHA, eps=EPS)
    x0, y0 = batch(rank)
    x, y = torch.from_numpy(x0), torch.from_numpy(y0)

    def step() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    wall, cpu = timed_steps(step, barrier, steps, warmup)
    if k > 1:
        tdist.destroy_process_group()
    return {"step_s": statistics.median(wall), "cpu_s": statistics.median(cpu), "processes": k}


def timed_steps(step: Any, barrier: Any, steps: int, warmup: int) -> tuple[list[float], list[float]]:
    """Wall and CPU time (this process, all its threads) of each of ``steps`` steps after ``warmup``
    untimed ones, the processes started together. On a shared machine the CPU time tells what a
    step costs, the wall time also what the other programs took from it."""
    for _ in range(warmup):
        step()
    barrier()
    wall, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    barrier()
    return wall, cpu


# --------------------------------------------------------------------------- the runs, in turn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(framework: str, processes: int, args: argparse.Namespace, mpiexec: str, bucket_mb: float = 25.0) -> dict:
    """One run in fresh processes; rank 0's figures."""
    command = [sys.executable, __file__, "--worker", framework, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--bucket-mb", str(bucket_mb), "--port", str(free_port())]
    if processes > 1:
        command = [mpiexec, "-n", str(processes), *command]
    env = {**os.environ, **ONE_THREAD}
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600,
                         cwd=Path(__file__).resolve().parents[1])
    if out.returncode != 0:
        raise SystemExit(f"{framework} on {processes} process(es) failed:\n{out.stderr[-3000:]}")
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of fewer steps")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--bucket-mb", type=float, default=25.0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker_ours(args.steps, args.warmup, args.bucket_mb) if args.worker == "ours" \
            else worker_torch(args.steps, args.warmup, args.port)
        if launcher_rank_size()[0] == 0:
            print(json.dumps(result), flush=True)
        return 0
    if args.quick:
        args.rounds, args.steps, args.warmup = 1, 10, 3

    print(machine())
    print(f"every process: {', '.join(f'{k}={v}' for k, v in ONE_THREAD.items())}; batch {BATCH} per process")
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    if not Path(mpiexec).exists():
        mpiexec = shutil.which("mpiexec")
    if mpiexec is None or _missing("mpi4py"):
        print("no mpi4py or mpiexec: pip install 'autograd-cnn[mpi]' to run this benchmark")
        return 0
    torch_here = not _missing("torch")
    runs = [("ours", 1, 25.0), ("ours", 2, 25.0), ("ours", 2, SMALL_BUCKET_MB)]
    if torch_here:
        runs[1:1] = [("torch", 1, 25.0)]
        runs.append(("torch", 2, 25.0))
    results: dict[tuple, list[dict]] = {r: [] for r in runs}
    for _ in range(args.rounds):
        for framework, processes, bucket_mb in runs:
            results[(framework, processes, bucket_mb)].append(run(framework, processes, args, mpiexec, bucket_mb))
    print_results(results, torch_here, args)
    return 0


def _missing(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is None


def _median(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def print_results(results: dict, torch_here: bool, args: argparse.Namespace) -> None:
    def throughput(framework: str, processes: int, bucket_mb: float = 25.0) -> float:
        return processes * BATCH / _median(results[(framework, processes, bucket_mb)], "step_s")

    print(f"\n### Lecture CNN, data-parallel on the CPU (samples/s, median of {args.rounds} rounds of "
          f"{args.steps} steps)\n")
    print("| | 1 process | 2 processes | speed-up |\n| --- | ---: | ---: | ---: |")
    ours1, ours2 = throughput("ours", 1), throughput("ours", 2)
    print(f"| autograd_cnn (MPI) | {ours1:.0f} | {ours2:.0f} | {ours2 / ours1:.2f}x |")
    if torch_here:
        theirs1, theirs2 = throughput("torch", 1), throughput("torch", 2)
        print(f"| PyTorch DDP (gloo) | {theirs1:.0f} | {theirs2:.0f} | {theirs2 / theirs1:.2f}x |")
    print("\nCPU time of a step, per process (ms; what the step costs, whatever else runs on the machine):\n")
    print("| | 1 process | 2 processes |\n| --- | ---: | ---: |")
    for name, framework in (("autograd_cnn (MPI)", "ours"), ("PyTorch DDP (gloo)", "torch")):
        if framework == "ours" or torch_here:
            print(f"| {name} | {_median(results[(framework, 1, 25.0)], 'cpu_s') * 1e3:.1f} | "
                  f"{_median(results[(framework, 2, 25.0)], 'cpu_s') * 1e3:.1f} |")
    print(f"\nour 2-process speed-up over 1 process: {ours2 / ours1:.2f}x (target 1.7x or more)")
    if torch_here:
        print(f"our 2-process throughput / PyTorch DDP's: {ours2 / theirs2:.2f} (target 1.00 or more)")
    print("\nOur all-reduce of the gradients, 2 processes (ms a step; in flight: from a bucket's start to its "
          "end, waiting for the other process included; hidden: the part of that before backward ended):\n")
    print("| buckets | all-reduce alone | in flight | hidden behind backward | backward waited at its end "
          "| samples/s |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for bucket_mb in (25.0, SMALL_BUCKET_MB):
        rows = results[("ours", 2, bucket_mb)]
        print(f"| {rows[0]['buckets']} of at most {bucket_mb:g} MB | {_median(rows, 'alone_s') * 1e3:.2f} | "
              f"{_median(rows, 'in_flight_s') * 1e3:.2f} | {_median(rows, 'hidden'):.0%} | "
              f"{_median(rows, 'waited_s') * 1e3:.2f} | {throughput('ours', 2, bucket_mb):.0f} |")


if __name__ == "__main__":
    raise SystemExit(main())
