"""Write your own op, then check it in a picture.

    python examples/write_your_own_op.py              # pictures into out/
    python examples/write_your_own_op.py --out pics

An op is a class: ``forward`` on arrays, ``backward`` with the engine's own ops, and ``rules``,
the derivative written out for the pictures. ``visual.gradcheck_graph`` checks every backward
step against central differences and colours it: green where the gradients agree, red where they
do not, with the worst element named. Here a correct softplus, and a sigmoid-weighted unit
(swish) whose backward forgets one term of the product rule.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

import autograd_cnn as ag
from autograd_cnn import autograd, visual
from autograd_cnn.functional import sigmoid


class Softplus(autograd.Function):
    """y = log(1 + e^x)"""
    rules = (f"∂L/∂x = {autograd.GRAD_OUT} · sigmoid(x)",)
    saved_names = ("x",)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.logaddexp(0, x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * sigmoid(x)


class WrongSwish(autograd.Function):
    """y = x · sigmoid(x), with a mistake in backward: the product rule's second term is missing"""
    rules = (f"∂L/∂x = {autograd.GRAD_OUT} · sigmoid(x)   (should be + x · sigmoid(x)(1 − sigmoid(x)))",)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1 + ctx.xp.exp(-x))

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * sigmoid(x)  # wrong: d/dx [x s(x)] = s(x) + x s(x) (1 - s(x))


def model(x: ag.Tensor, w: ag.Tensor, act) -> ag.Tensor:
    """A tiny layer: act(x @ w), summed with a square so that several steps are checked."""
    return (act.apply(x @ w) ** 2).sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out", help="folder for the pictures (default: %(default)s)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)
    x = ag.tensor(rng.standard_normal((3, 4)), name="x")
    w = ag.tensor(rng.standard_normal((4, 2)), name="w")
    for act in (Softplus, WrongSwish):
        g = visual.gradcheck_graph(lambda x, w, act=act: model(x, w, act), [x, w])
        bad = [c for c in g.checks.values() if not c.ok]
        path = os.path.join(args.out, f"gradcheck_{act.__name__.lower()}.svg")
        try:
            path = g.render(path[:-4], format="svg", cleanup=True)
        except visual.RenderError as e:  # no Graphviz: the verdicts still print
            path = f"(not drawn: {e})"
        verdict = "every step agrees" if not bad else f"{bad[0].op} is wrong: {bad[0].worst}"
        print(f"{act.__name__}: {verdict}\n  picture: {path}")


if __name__ == "__main__":
    main()
