"""The ``autograd-cnn`` command: demo, train, graph, info, bench."""
from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    import autograd_cnn as ag
    from autograd_cnn.backends import cupy_usable, get_backend

    print(f"autograd_cnn {ag.__version__}  Python {platform.python_version()}  NumPy {np.__version__}")
    print(f"default backend: {get_backend().name}")
    print(f"available backends: {', '.join(ag.available_backends())}")
    for name in ag.available_backends():
        details = get_backend(name).describe()
        print("  " + ", ".join(f"{k}={v}" for k, v in details.items()))
    ok, why = cupy_usable()
    if not ok:
        print(f"  cupy: not usable ({why})")
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                print(f"BLAS: {pool.get('internal_api')} {pool.get('version')} "
                      f"({pool.get('architecture')}, {pool.get('num_threads')} threads)")
    except ImportError:
        print("BLAS: install threadpoolctl to see which BLAS NumPy uses")
    return 0


def _demo(args: argparse.Namespace) -> int:
    """A worked example: a neuron, its loss, and the gradients backprop gives."""
    import autograd_cnn as ag
    import autograd_cnn.functional as F

    x = ag.tensor([[1.0, -2.0, 3.0]], name="x")
    w = ag.tensor([[0.5, -0.25, 0.1], [0.2, 0.4, -0.3]], requires_grad=True, name="w")
    b = ag.tensor([0.1, -0.1], requires_grad=True, name="b")
    z = F.linear(x, w, b)
    loss = F.cross_entropy(z, ag.tensor([1]))
    loss.backward()
    print("z =", z.numpy().round(4), " loss =", round(loss.item(), 4))
    print("dL/dz = softmax(z) - onehot =", (F.softmax(z).numpy() - [[0, 1]]).round(4))
    print("dL/dw =", w.grad.numpy().round(4).tolist())
    print("dL/db =", b.grad.numpy().round(4).tolist())
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "info": (_info, "version, backends, devices, BLAS"),
    "demo": (_demo, "a worked example of backpropagation"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograd-cnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][0](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
