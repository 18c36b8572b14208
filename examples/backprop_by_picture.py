"""Backpropagation by picture: three graphs, each drawn forward, backward, both, and step by step.

    python examples/backprop_by_picture.py              # pictures into out/
    python examples/backprop_by_picture.py --out pics --format png

1. The chain rule on three scalars: f = (x + y) * z.
2. One neuron layer with softmax cross-entropy: the gradient at the logits is z − z*
   (softmax(z) minus the one-hot target), as in the lecture.
3. One training step of the lecture CNN on four real digits, also collapsed to one node per layer.

Each graph gives <name>_forward, <name>_backward, <name>_both (with gradient flow) and a folder
<name>_steps/ whose index.html steps through the backward pass with a slider (open it in a browser).
"""
from __future__ import annotations

import argparse
import os

import numpy as np

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import data, models, optim, visual


def draw_all(loss: ag.Tensor, out: str, name: str, fmt: str, **options) -> None:
    """Steps first (they replay backward on the intact graph), then the real backward, then pictures."""
    visual.backprop_frames(loss, os.path.join(out, f"{name}_steps"), format=fmt)
    visual.save(loss, os.path.join(out, f"{name}_forward.{fmt}"), kind="forward", **options)
    loss.backward(retain_graph=True)  # keep the saved values so "both" can show what each step reads
    visual.save(loss, os.path.join(out, f"{name}_backward.{fmt}"), kind="backward", **options)
    visual.save(loss, os.path.join(out, f"{name}_both.{fmt}"), kind="both", flow=True, **options)
    print(f"  {name}: {out}/{name}_{{forward,backward,both}}.{fmt} and {out}/{name}_steps/index.html")


def chain_rule(out: str, fmt: str) -> None:
    """f = (x + y) * z with x = -2, y = 5, z = -4: df/dx = df/dy = z = -4, df/dz = x + y = 3."""
    x = ag.tensor(-2.0, requires_grad=True, name="x")
    y = ag.tensor(5.0, requires_grad=True, name="y")
    z = ag.tensor(-4.0, requires_grad=True, name="z")
    q = x + y
    q.name = "q = x + y"
    f = q * z
    f.name = "f = q * z"
    draw_all(f, out, "chain_rule", fmt, rankdir="LR")
    print(f"    f = {f.item():g}; df/dx = {x.grad.item():g}, df/dy = {y.grad.item():g}, df/dz = {z.grad.item():g}")


def neuron(out: str, fmt: str) -> None:
    """z = W x + b, L = cross_entropy(z, class 1): dL/dz = softmax(z) - onehot."""
    x = ag.tensor([[1.0, -2.0, 3.0]], name="x")
    w = ag.tensor([[0.5, -0.25, 0.1], [0.2, 0.4, -0.3]], requires_grad=True, name="W")
    b = ag.tensor([0.1, -0.1], requires_grad=True, name="b")
    z = F.linear(x, w, b)
    z.name = "z (logits)"
    z.retain_grad()
    loss = F.cross_entropy(z, ag.tensor([1]))
    loss.name = "L"
    draw_all(loss, out, "neuron", fmt)
    expected = F.softmax(z).numpy() - np.array([[0.0, 1.0]])
    print(f"    dL/dz = {z.grad.numpy().astype(float).round(4).tolist()}  z - z* = {expected.round(4).tolist()}")


def cnn_step(out: str, fmt: str) -> None:
    """One RMSprop step of the lecture CNN on four shipped digits."""
    ag.manual_seed(0)
    model = models.lecture_cnn(softmax=False)  # logits; cross_entropy applies the softmax
    (images, labels), _ = data.load_images("sample")  # (N, 1, 28, 28) in [0, 1]
    pick = [int(np.flatnonzero(labels == digit)[0]) for digit in (0, 3, 5, 9)]
    x = ag.tensor(images[pick], name="digits")
    y = ag.tensor(labels[pick])
    loss = F.cross_entropy(model(x), y)
    loss.name = "L"
    draw_all(loss, out, "lecture_cnn", fmt)
    visual.save(loss, os.path.join(out, f"lecture_cnn_layers.{fmt}"), kind="both", collapse="module", flow=True)
    print(f"  lecture_cnn_layers: {out}/lecture_cnn_layers.{fmt} (one node per layer)")
    before = loss.item()
    optimizer = optim.RMSprop(model.parameters(), lr=1e-3)
    optimizer.step()
    with ag.no_grad():
        after = F.cross_entropy(model(x), y).item()
    print(f"    loss on these digits: {before:.4f} before the step, {after:.4f} after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out", help="folder for the pictures (default: %(default)s)")
    parser.add_argument("--format", default="svg", choices=["svg", "png"], help="default: %(default)s")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print("1. the chain rule on three scalars")
    chain_rule(args.out, args.format)
    print("2. a neuron layer with softmax cross-entropy")
    neuron(args.out, args.format)
    print("3. one training step of the lecture CNN")
    cnn_step(args.out, args.format)


if __name__ == "__main__":
    main()
