"""Graph rendering speed: the lecture CNN's "both" picture of one training step, and a 2,000-op
graph collapsed by module, each rendered to SVG by Graphviz's dot; then the curve of the "both"
picture of a chain of 100, 300, 1,000 and 10,000 ops and of a 50-layer ResNet-style model, with
the dot process's peak memory.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/render.py

Targets: lecture CNN "both" < 2 s; 2,000 ops collapsed < 5 s; every point of the curve < 5 s and
< 500 MB (the renderer folds a graph past visual.fold.FOLD_LIMIT nodes, so the bigger chains are
drawn folded). PyTorch draws no graphs, so the PyTorch column is one training step (forward +
backward) of the same graph in PyTorch CPU, timed in processes of its own (``--runs`` of them,
the figure their median): the ratio says how many PyTorch steps one picture costs.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import add_solo_arguments, machine, median_time, report, solo_child, solo_in_turn

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import autograd, models, visual

BATCH = 32
LAYERS, WIDTH = 250, 16  # 250 modules of 8 ops each: 2,000 ops


def lecture_cnn_loss() -> ag.Tensor:
    ag.manual_seed(0)
    model = models.lecture_cnn(softmax=False)
    x = ag.tensor(np.random.default_rng(0).random((BATCH, 1, 28, 28), dtype=np.float32), name="images")
    return F.cross_entropy(model(x), ag.tensor(np.arange(BATCH) % 10))


def deep_loss() -> tuple[ag.Tensor, int]:
    """A residual stack of LAYERS modules, each linear, bias, tanh, scale, add back: 2,000 ops in all."""
    rng = np.random.default_rng(0)
    h = ag.tensor(rng.standard_normal((4, WIDTH)).astype(np.float32), name="x")
    count = 0
    for i in range(LAYERS):
        w = ag.tensor(rng.standard_normal((WIDTH, WIDTH)).astype(np.float32) * 0.1, requires_grad=True,
                      name=f"blocks.{i}.weight")
        b = ag.tensor(np.zeros(WIDTH, np.float32), requires_grad=True, name=f"blocks.{i}.bias")
        with autograd.scope(f"blocks.{i}"):
            y = ((h @ w.T + b).tanh() * 0.5 + h) * 1.0  # MatMul Transpose Add Tanh Mul Add Mul
            h = y.reshape((4, WIDTH))  # Reshape: 8 ops per block
        count += 8
    return h.sum(), count + 1


def chain_loss(n: int) -> ag.Tensor:
    """A chain of n ops (tanh and scale in turn, then a sum), as deep networks without modules are."""
    h = ag.tensor(np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32), requires_grad=True, name="x")
    for i in range(n - 1):
        h = h * 1.01 if i % 2 else h.tanh()
    return h.sum()


def resnet_loss() -> ag.Tensor:
    """One training step of a 50-layer CIFAR-style ResNet (8 basic blocks a stage) on two small images."""
    ag.manual_seed(0)
    model = models.resnet((8, 8, 8), in_channels=1)
    x = ag.tensor(np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32), name="images")
    return F.cross_entropy(model(x), ag.tensor(np.array([1, 2]), name="labels"))


CURVE_CHILD = """
import sys, time, resource
sys.path.insert(0, {here!r})
from render import chain_loss, resnet_loss
from autograd_cnn import visual
loss = resnet_loss() if {n} == 0 else chain_loss({n})
loss.backward(retain_graph=True)
start = time.perf_counter()
g = visual.draw(loss, kind="both", flow=True)
g.pipe(format="svg")
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(seconds, peak, len(visual.trace(loss).ops), repr(g.drawing.fold_note))
"""


def curve_point(n: int) -> tuple[float, float, int, str]:
    """One point, in a fresh process so that dot's peak memory is this picture's alone: seconds from
    trace to SVG, dot's peak MB, the op count, and what was folded."""
    here = str(Path(__file__).resolve().parent)
    done = subprocess.run([sys.executable, "-c", CURVE_CHILD.format(here=here, n=n)], capture_output=True,
                          text=True, timeout=600, check=True)
    seconds, dot_mb, ops, note = done.stdout.strip().splitlines()[-1].split(" ", 3)
    return float(seconds), float(dot_mb), int(ops), ast.literal_eval(note)


def curve() -> None:
    print("\n\"both\" picture to SVG (flow=True), traced, folded where past the limit, laid out by dot")
    print(f"{'graph':<28}{'ops':>8}{'seconds':>10}{'dot peak MB':>13}  folded")
    worst = 0.0
    for n, name in [(100, "chain of 100 ops"), (300, "chain of 300 ops"), (1000, "chain of 1,000 ops"),
                    (10000, "chain of 10,000 ops"), (0, "ResNet-50 (CIFAR-style)")]:
        seconds, dot_mb, ops, note = curve_point(n)
        worst = max(worst, seconds)
        print(f"{name:<28}{ops:>8,}{seconds:>10.2f}{dot_mb:>13.0f}  {note[:90] or 'no'}")
    print(f"slowest point {worst:.2f} s (target < 5 s, < 500 MB)")


def render(loss: ag.Tensor, kind: str, collapse: str | None) -> None:
    visual.draw(loss, kind=kind, collapse=collapse, flow=kind != "forward").pipe(format="svg")


def torch_cnn_step(torch: Any) -> Callable[[], None]:
    """One training step (forward and backward) of the lecture CNN in PyTorch."""
    torch.manual_seed(0)
    n = torch.nn
    model = n.Sequential(n.Conv2d(1, 32, 3), n.ReLU(), n.MaxPool2d(2), n.Conv2d(32, 64, 3), n.ReLU(),
                         n.MaxPool2d(2), n.Conv2d(64, 128, 3), n.ReLU(), n.Flatten(), n.Linear(1152, 10))
    x = torch.rand(BATCH, 1, 28, 28)
    y = torch.arange(BATCH) % 10

    def step() -> None:
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return step


def torch_deep_step(torch: Any) -> Callable[[], None]:
    """Forward and backward of the 2,000-op graph in PyTorch."""
    g = torch.Generator().manual_seed(0)
    ws = [(torch.randn(WIDTH, WIDTH, generator=g) * 0.1).requires_grad_() for _ in range(LAYERS)]
    bs = [torch.zeros(WIDTH, requires_grad=True) for _ in range(LAYERS)]
    x = torch.randn(4, WIDTH, generator=g)

    def step() -> None:
        h = x
        for w, b in zip(ws, bs):
            h = (((h @ w.T + b).tanh() * 0.5 + h) * 1.0).reshape(4, WIDTH)
        h.sum().backward()
    return step


TORCH_STEPS = {"cnn": (torch_cnn_step, 10), "deep": (torch_deep_step, 5)}  # the step, and calls timed


def torch_steps(runs: int) -> dict[str, float | None]:
    """The median time (s) of each PyTorch step, over ``runs`` processes of its own (None without PyTorch)."""
    if importlib.util.find_spec("torch") is None:
        return dict.fromkeys(TORCH_STEPS)
    results = solo_in_turn(__file__, list(TORCH_STEPS), runs, {"torch": ("torch", {})})
    return {case: statistics.median(results[(case, "torch")]) for case in TORCH_STEPS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--curve-only", action="store_true", help="only the curve of chain sizes and ResNet-50")
    add_solo_arguments(parser, runs=3, frameworks=("torch",))
    args = parser.parse_args()
    if args.solo:
        import torch

        make, repeat = TORCH_STEPS[args.case]
        solo_child(make(torch), repeat, warmup=2)
        return
    if args.curve_only:
        curve()
        return
    repeat = 2 if args.quick else 5
    print(machine())
    theirs = torch_steps(1 if args.quick else args.runs)
    cnn = lecture_cnn_loss()
    deep, ops = deep_loss()
    assert len(visual.trace(deep).ops) == ops, "the deep graph should have 2,000 ops and the final sum"
    rows = []
    start = time.perf_counter()
    t_cnn = median_time(lambda: render(cnn, "both", None), repeat=repeat, warmup=1)
    rows.append((f"lecture CNN, one step (batch {BATCH}), both -> SVG", t_cnn, theirs["cnn"]))
    t_deep = median_time(lambda: render(deep, "both", "module"), repeat=repeat, warmup=1)
    rows.append((f"{ops - 1:,}-op graph, collapse=module, both -> SVG", t_deep, theirs["deep"]))
    t_fwd = median_time(lambda: render(deep, "forward", "module"), repeat=repeat, warmup=1)
    rows.append((f"{ops - 1:,}-op graph, collapse=module, forward -> SVG", t_fwd, theirs["deep"]))
    report(rows, "Graph rendering (PyTorch column: one training step of the same graph, in processes of its own)")
    print(f"\nlecture CNN both: {t_cnn:.2f} s (target < 2 s); 2,000 ops collapsed: {t_deep:.2f} s "
          f"(target < 5 s); total {time.perf_counter() - start:.0f} s")
    curve()


if __name__ == "__main__":
    main()
