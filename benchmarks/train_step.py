"""One training step of the lecture CNN, against PyTorch in the same run: time and peak memory.

Time: each framework alone in its own process, ``--runs`` processes each (default 5), taken
in turn; a process times ``--repeat`` steps after five untimed ones. The table gives each
framework's median over its processes, the fastest and slowest process and the spread.

The model (104,202 parameters): Conv 1->32 k3, ReLU, MaxPool 2, Conv 32->64 k3, ReLU,
MaxPool 2, Conv 64->128 k3, ReLU, Flatten, Linear 1152->10; softmax cross-entropy;
RMSprop (lr 1e-3, alpha 0.9, eps 1e-7, Keras's defaults: optim.RMSprop and
torch.optim.RMSprop). float32, MNIST-shaped batches.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/train_step.py
    python benchmarks/train_step.py --backend numba      # the compiled CPU backend
    python benchmarks/train_step.py --backend cupy       # against PyTorch CUDA where present

``--kernels STEPS`` adds where our step's time goes, op by op (wall and process CPU time per
step, and the GFLOP/s of each product), and the step's arithmetic against NumPy's GEMM peak
measured in the same run.

Peak memory: each framework runs the step in its own subprocess; after the imports and the
data the peak resident size (VmHWM, the kernel's ru_maxrss) is reset to the current size
through /proc/self/clear_refs, and the figure is the peak after three steps minus that
baseline: the activations, gradients and workspace one step needs. (Without the reset,
the import's own transient peak can hide the step's.)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from common import (
    add_solo_arguments,
    gemm_peak,
    limit_threads,
    machine,
    median_time,
    solo_child,
    solo_frameworks,
    solo_in_turn,
    solo_report,
    torch_or_none,
)

LR, ALPHA, EPS = 1e-3, 0.9, 1e-7
SHAPES = {"w1": (32, 1, 3, 3), "b1": (32,), "w2": (64, 32, 3, 3), "b2": (64,),
          "w3": (128, 64, 3, 3), "b3": (128,), "w4": (10, 1152), "b4": (10,)}


def initial_weights(seed: int = 0) -> dict:
    """PyTorch's default initialisation: uniform in +-1/sqrt(fan_in), for weights and biases."""
    rng = np.random.default_rng(seed)
    fans = {"1": 9, "2": 32 * 9, "3": 64 * 9, "4": 1152}
    return {name: rng.uniform(-1, 1, size=shape).astype(np.float32) / math.sqrt(fans[name[1]])
            for name, shape in SHAPES.items()}


def batch(batch_size: int, seed: int = 1) -> tuple:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(batch_size, 1, 28, 28)).astype(np.float32)
    return x, rng.integers(0, 10, size=batch_size)


def step_ours(backend: str, batch_size: int) -> tuple[Callable[[], Any], Callable[[], None]]:
    import autograd_cnn as ag
    import autograd_cnn.functional as F
    from autograd_cnn import optim

    params = {k: ag.tensor(v, requires_grad=True, backend=backend) for k, v in initial_weights().items()}
    x0, y0 = batch(batch_size)
    x, y = ag.tensor(x0, backend=backend), ag.tensor(y0, backend=backend)
    optimizer = optim.RMSprop(list(params.values()), lr=LR, alpha=ALPHA, eps=EPS)
    p = params

    def step() -> Any:
        optimizer.zero_grad()
        h = F.max_pool2d(F.relu(F.conv2d(x, p["w1"], p["b1"])), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, p["w2"], p["b2"])), 2)
        h = F.relu(F.conv2d(h, p["w3"], p["b3"]))
        loss = F.cross_entropy(F.linear(F.flatten(h), p["w4"], p["b4"]), y)
        loss.backward()
        optimizer.step()
        return loss
    return step, params["w1"].backend_object.synchronize


def step_torch(torch: Any, device: str, batch_size: int) -> tuple[Callable[[], Any], Callable[[], None]]:
    fn = torch.nn.functional
    params = {k: torch.tensor(v, device=device, requires_grad=True) for k, v in initial_weights().items()}
    x0, y0 = batch(batch_size)
    x, y = torch.tensor(x0, device=device), torch.tensor(y0, device=device)
    optimizer = torch.optim.RMSprop(list(params.values()), lr=LR, alpha=ALPHA, eps=EPS)
    p = params

    def step() -> Any:
        optimizer.zero_grad()
        h = fn.max_pool2d(fn.relu(fn.conv2d(x, p["w1"], p["b1"])), 2)
        h = fn.max_pool2d(fn.relu(fn.conv2d(h, p["w2"], p["b2"])), 2)
        h = fn.relu(fn.conv2d(h, p["w3"], p["b3"]))
        loss = fn.cross_entropy(fn.linear(h.flatten(1), p["w4"], p["b4"]), y)
        loss.backward()
        optimizer.step()
        return loss

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()
    return step, sync


def peak_memory_child(which: str, backend: str, batch_size: int) -> None:
    """Run in a subprocess: print the growth of peak RSS (MiB) over a few steps."""
    if which == "ours":
        step, sync = step_ours(backend, batch_size)
    else:
        step, sync = step_torch(torch_or_none(), "cpu", batch_size)
    before = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM (ru_maxrss) to the current resident size
    for _ in range(3):
        step()
    sync()
    after = _rss_kib("VmHWM")
    print(json.dumps({"peak_mib": (after - before) / 1024}))


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_memory(which: str, backend: str, batch_size: int, runs: int = 3) -> float:
    """The median over ``runs`` fresh processes: PyTorch's figure moves by a third from one to the next."""
    peaks = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, __file__, "--memory-child", which, "--backend", backend,
                              "--batch-size", str(batch_size)], capture_output=True, text=True, check=True,
                             env=os.environ.copy())
        peaks.append(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])
    return statistics.median(peaks)


def profile(step: Callable[[], Any], sync: Callable[[], None], backend: str, steps: int) -> None:
    """Where a step's host time goes (cProfile), and on a GPU how it splits between host and device."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    sync()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    if backend == "cupy":
        from cupyx.profiler import benchmark

        print(benchmark(step, n_repeat=steps, n_warmup=3))


def step_products(batch_size: int) -> dict:
    """The matrix product under each product op of one step, by (op, its first input's shape):
    the shapes (M, K) and (K, N) of a @ b. The convs' forward (im2col rows times the weights),
    input gradient (the output gradient times the weights: col2im aside; none for the first
    conv, whose images need none) and weight gradient, and the Linear layer's three products."""
    products, hw, channels = {}, 28, 1
    for out_channels in (32, 64, 128):
        out_hw = hw - 2
        rows, window = batch_size * out_hw * out_hw, 9 * channels
        products[("Conv2d", (batch_size, channels, hw, hw))] = ((rows, window), (window, out_channels))
        products[("Conv2dGradWeight", (batch_size, channels, hw, hw))] = ((out_channels, rows), (rows, window))
        if channels > 1:
            products[("ConvTranspose2d", (batch_size, out_channels, out_hw, out_hw))] = (
                (rows, out_channels), (out_channels, window))
        hw, channels = (out_hw // 2 if out_channels < 128 else out_hw), out_channels
    products.update({("Linear", (batch_size, 1152)): ((batch_size, 1152), (1152, 10)),
                     ("MatMul", (batch_size, 10)): ((batch_size, 10), (10, 1152)),
                     ("MatMul", (10, batch_size)): ((10, batch_size), (batch_size, 1152))})
    return products


def step_flops(batch_size: int) -> dict:
    """Multiply-adds x 2 of each product in one step, keyed as ``step_products``."""
    return {key: 2 * a[0] * a[1] * b[1] for key, (a, b) in step_products(batch_size).items()}


def products_alone(batch_size: int, repeat: int = 30) -> dict:
    """Each of the step's products timed alone (ms, the median of ``repeat``) on contiguous
    float32 matrices with NumPy and BLAS's own threads, in whichever of a @ b and (bᵀ @ aᵀ)ᵀ
    is faster: what the products cost with no window copies, no col2im and no other pass
    around them, the part of a step that better elementwise code cannot remove."""
    rng = np.random.default_rng(0)
    alone = {}
    for key, (shape_a, shape_b) in step_products(batch_size).items():
        a = rng.standard_normal(shape_a, dtype=np.float32)
        b = rng.standard_normal(shape_b, dtype=np.float32)
        ways = ((a, b), (np.ascontiguousarray(b.T), np.ascontiguousarray(a.T)))
        alone[key] = min(median_time(partial(np.matmul, left, right), repeat, warmup=1) for left, right in ways) * 1e3
    return alone


def kernel_breakdown(step: Callable[[], Any], steps: int, batch_size: int, theirs: float | None) -> None:
    """Time every op's forward (the kernels; backward runs ops too) over ``steps`` steps, wall and
    process CPU time, and set the step's arithmetic against NumPy's GEMM peak."""
    from autograd_cnn.autograd import Function

    wall: dict = defaultdict(float)
    cpu: dict = defaultdict(float)

    def timed(cls: type, forward: Callable) -> Callable:
        def run(ctx: Any, *args: Any, **params: Any) -> Any:
            start, start_cpu = time.perf_counter(), time.process_time()
            out = forward(ctx, *args, **params)
            key = (cls.__name__, tuple(args[0].shape))
            wall[key] += time.perf_counter() - start
            cpu[key] += time.process_time() - start_cpu
            return out
        return staticmethod(run)

    originals, todo = {}, list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if "forward" in vars(cls):
            originals[cls] = vars(cls)["forward"]
            cls.forward = timed(cls, originals[cls].__func__)
    alone = products_alone(batch_size)  # first: BLAS still has its own thread count
    try:
        times, cpu_start = [], time.process_time()
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        step_cpu = (time.process_time() - cpu_start) / steps
    finally:
        for cls, forward in originals.items():
            cls.forward = forward
    flops, per_step = step_flops(batch_size), statistics.median(times)
    print(f"\n### Where the step goes ({steps} steps; ms per step, wall and process CPU)\n")
    print("The product alone: the op's matrix product by itself on contiguous matrices (``products_alone``).\n")
    print("| op | first input | wall | CPU | GFLOP/s | product alone | its GFLOP/s |\n"
          "| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for key in sorted(wall, key=lambda k: -wall[k]):
        if wall[key] / steps < 50e-6:  # under 0.05 ms a step
            continue
        rate = f"{flops[key] / (wall[key] / steps) / 1e9:.0f}" if key in flops else ""
        floor = f"{alone[key]:.2f} | {flops[key] / alone[key] / 1e6:.0f}" if key in alone else " | "
        print(f"| {key[0]} | {key[1]} | {wall[key] / steps * 1e3:.2f} | {cpu[key] / steps * 1e3:.2f} | "
              f"{rate} | {floor} |")
    ops, mean = sum(wall.values()) / steps, statistics.mean(times)
    print(f"\nstep: median {per_step * 1e3:.2f} ms (mean {mean * 1e3:.2f}, CPU {step_cpu * 1e3:.2f}); "
          f"ops {ops * 1e3:.2f} ms, engine and optimizer {(mean - ops) * 1e3:.2f} ms")
    product_ops = sum(wall[key] for key in alone if key in wall) / steps * 1e3
    print(f"the product ops {product_ops:.2f} ms, their products alone {sum(alone.values()):.2f} ms "
          f"({sum(flops.values()) / sum(alone.values()) / 1e6:.0f} GFLOP/s); the other ops "
          f"{ops * 1e3 - product_ops:.2f} ms")
    peak, total = gemm_peak(), sum(flops.values())
    text = (f"the step's {total / 1e9:.2f} GFLOP: {total / per_step / 1e9:.0f} GFLOP/s, "
            f"{total / per_step / 1e9 / peak:.0%} of NumPy's GEMM peak here ({peak:.0f} GFLOP/s, 2048^2 float32)")
    if theirs:
        text += f"; PyTorch's step {total / theirs / 1e9:.0f} GFLOP/s"
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["numpy", "numba", "cupy"], default="numpy")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=20, help="timed steps in each process")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS and PyTorch threads for both (default: every core)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="also profile STEPS of our steps: the Python functions that take the host's "
                             "time, and (on cupy) the host and GPU time per step")
    parser.add_argument("--kernels", type=int, default=0, metavar="STEPS",
                        help="also time our step op by op over STEPS steps, against NumPy's GEMM peak")
    parser.add_argument("--memory-child", choices=["ours", "torch"], help=argparse.SUPPRESS)
    add_solo_arguments(parser)
    args = parser.parse_args()
    if args.memory_child:
        peak_memory_child(args.memory_child, args.backend, args.batch_size)
        return
    device = "cuda" if args.backend == "cupy" else "cpu"
    if args.solo:
        torch = torch_or_none() if args.solo == "torch" else None
        limit_threads(torch, args.threads)
        step, sync = step_ours(args.backend, args.batch_size) if torch is None else \
            step_torch(torch, device, args.batch_size)
        solo_child(step, args.repeat, sync=sync)
        return
    torch = torch_or_none()
    print(machine())
    if torch is not None and device == "cuda" and not torch.cuda.is_available():
        print("PyTorch sees no CUDA device: no GPU ratio")
        torch = None
    extra = ["--backend", args.backend, "--batch-size", str(args.batch_size), "--repeat", str(args.repeat)]
    if args.threads:
        extra += ["--threads", str(args.threads)]
    results = solo_in_turn(__file__, ["cnn"], args.runs, solo_frameworks(torch is not None), extra)
    who = "PyTorch CUDA" if device == "cuda" else "PyTorch CPU"
    solo_report(results, {"cnn": f"lecture CNN training step, batch {args.batch_size}"},
                f"Lecture CNN step on {args.backend} vs {who} (float32, median of {args.repeat} steps a process)")
    theirs = statistics.median(results[("cnn", "torch")]) if torch is not None else None
    if args.kernels or args.profile:
        limit_threads(torch, args.threads)
        step, sync = step_ours(args.backend, args.batch_size)
        if args.kernels:
            kernel_breakdown(step, args.kernels, args.batch_size, theirs)
        if args.profile:
            profile(step, sync, args.backend, args.profile)
    if args.backend != "cupy" and not args.no_memory:
        mine = peak_memory("ours", args.backend, args.batch_size)
        text = f"peak memory of one step (ru_maxrss growth, median of 3 processes): autograd_cnn {mine:.1f} MiB"
        if torch is not None:
            other = peak_memory("torch", "numpy", args.batch_size)
            text += f", PyTorch CPU {other:.1f} MiB, ratio {mine / other:.2f}x"
        print(text)


if __name__ == "__main__":
    main()
