"""Graph rendering speed: the lecture CNN's "both" picture of one training step, and a 2,000-op
graph collapsed by module, each rendered to SVG by Graphviz's dot.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/render.py

Targets: lecture CNN "both" < 2 s; 2,000 ops collapsed < 5 s. PyTorch draws no graphs, so the
PyTorch column is one training step (forward + backward) of the same graph in PyTorch CPU: the
ratio says how many PyTorch steps one picture costs.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine, median_time, report, torch_or_none

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


def render(loss: ag.Tensor, kind: str, collapse: str | None) -> None:
    visual.draw(loss, kind=kind, collapse=collapse, flow=kind != "forward").pipe(format="svg")


def torch_cnn_step(torch) -> float:
    torch.manual_seed(0)
    n = torch.nn
    model = n.Sequential(n.Conv2d(1, 32, 3), n.ReLU(), n.MaxPool2d(2), n.Conv2d(32, 64, 3), n.ReLU(),
                         n.MaxPool2d(2), n.Conv2d(64, 128, 3), n.ReLU(), n.Flatten(), n.Linear(1152, 10))
    x = torch.rand(BATCH, 1, 28, 28)
    y = torch.arange(BATCH) % 10

    def step() -> None:
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return median_time(step, repeat=10)


def torch_deep_step(torch) -> float:
    g = torch.Generator().manual_seed(0)
    ws = [(torch.randn(WIDTH, WIDTH, generator=g) * 0.1).requires_grad_() for _ in range(LAYERS)]
    bs = [torch.zeros(WIDTH, requires_grad=True) for _ in range(LAYERS)]
    x = torch.randn(4, WIDTH, generator=g)

    def step() -> None:
        h = x
        for w, b in zip(ws, bs):
            h = (((h @ w.T + b).tanh() * 0.5 + h) * 1.0).reshape(4, WIDTH)
        h.sum().backward()
    return median_time(step, repeat=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeat = 2 if args.quick else 5
    torch = torch_or_none()
    print(machine())
    cnn = lecture_cnn_loss()
    deep, ops = deep_loss()
    assert len(visual.trace(deep).ops) == ops, "the deep graph should have 2,000 ops and the final sum"
    rows = []
    start = time.perf_counter()
    t_cnn = median_time(lambda: render(cnn, "both", None), repeat=repeat, warmup=1)
    rows.append((f"lecture CNN, one step (batch {BATCH}), both -> SVG", t_cnn,
                 torch_cnn_step(torch) if torch else None))
    torch_deep = torch_deep_step(torch) if torch else None
    t_deep = median_time(lambda: render(deep, "both", "module"), repeat=repeat, warmup=1)
    rows.append((f"{ops - 1:,}-op graph, collapse=module, both -> SVG", t_deep, torch_deep))
    t_fwd = median_time(lambda: render(deep, "forward", "module"), repeat=repeat, warmup=1)
    rows.append((f"{ops - 1:,}-op graph, collapse=module, forward -> SVG", t_fwd, torch_deep))
    report(rows, "Graph rendering (PyTorch column: one training step of the same graph)")
    print(f"\nlecture CNN both: {t_cnn:.2f} s (target < 2 s); 2,000 ops collapsed: {t_deep:.2f} s "
          f"(target < 5 s); total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
