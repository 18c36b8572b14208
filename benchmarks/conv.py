"""Convolution and pooling, forward + backward, against PyTorch CPU in the same run (float32).

    conv0    x (128, 32, 13, 13), weight (64, 32, 3, 3)  (the lecture CNN's third conv)
    conv1    x (128, 1, 28, 28),  weight (32, 1, 3, 3)   (its first conv)
    pool     max_pool2d 2x2 on (128, 32, 26, 26)
    depthwise  x (128, 32, 26, 26), weight (32, 1, 3, 3), groups 32, padding 1
    groups4    x (128, 32, 26, 26), weight (32, 8, 3, 3), groups 4, padding 1

Each case and framework runs alone in its own process, ``--runs`` of each taken in turn; ours on
the default backend, or the one ``--backend`` names.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/conv.py [--cases depthwise groups4] \
        [--backend numpy]
"""
from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
from common import (
    add_solo_arguments,
    limit_threads,
    machine,
    solo_child,
    solo_frameworks,
    solo_in_turn,
    solo_report,
    torch_or_none,
)

import autograd_cnn as ag
import autograd_cnn.functional as F

CONVS = [((128, 32, 13, 13), (64, 32, 3, 3)), ((128, 1, 28, 28), (32, 1, 3, 3))]
POOL = (128, 32, 26, 26)
GROUPED = {"depthwise": ((128, 32, 26, 26), (32, 1, 3, 3), 32), "groups4": ((128, 32, 26, 26), (32, 8, 3, 3), 4)}


def conv_ours(x0: np.ndarray, w0: np.ndarray, input_grad: bool, **kwargs: Any) -> Callable[[], Any]:
    """conv2d forward and backward; the first layer of a network needs no input gradient."""
    x = ag.tensor(x0, requires_grad=input_grad)
    w = ag.tensor(w0, requires_grad=True)
    b = ag.tensor(np.zeros(w0.shape[0], np.float32), requires_grad=True)

    def step() -> Any:
        y = F.conv2d(x, w, b, **kwargs)
        y.backward(ag.ones_like(y))
        x.grad = w.grad = b.grad = None
    return step


def conv_torch(torch: Any, x0: np.ndarray, w0: np.ndarray, input_grad: bool, **kwargs: Any) -> Callable[[], Any]:
    x = torch.tensor(x0, requires_grad=input_grad)
    w = torch.tensor(w0, requires_grad=True)
    b = torch.zeros(w0.shape[0], requires_grad=True)

    def step() -> Any:
        y = torch.nn.functional.conv2d(x, w, b, **kwargs)
        y.backward(torch.ones_like(y))
        x.grad = w.grad = b.grad = None
    return step


def pool_ours(x0: np.ndarray) -> Callable[[], Any]:
    x = ag.tensor(x0, requires_grad=True)

    def step() -> Any:
        y = F.max_pool2d(x, 2)
        y.backward(ag.ones_like(y))
        x.grad = None
    return step


def pool_torch(torch: Any, x0: np.ndarray) -> Callable[[], Any]:
    x = torch.tensor(x0, requires_grad=True)

    def step() -> Any:
        y = torch.nn.functional.max_pool2d(x, 2)
        y.backward(torch.ones_like(y))
        x.grad = None
    return step


def channels_last(x: np.ndarray) -> np.ndarray:
    """An (N, C, H, W) array stored channels-last, as our conv layers hand it on."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def make_step(case: str, torch: Any) -> Callable[[], Any]:
    """The step of ``case`` ("conv0", "conv1": CONVS[i]; "pool"; GROUPED's) for us (``torch`` None) or PyTorch."""
    rng = np.random.default_rng(0)
    if case == "pool":
        x0 = channels_last(rng.standard_normal(POOL, dtype=np.float32))
        return pool_ours(x0) if torch is None else pool_torch(torch, np.ascontiguousarray(x0))
    if case in GROUPED:  # a middle layer: its input gradient too, in PyTorch's default layout
        x_shape, w_shape, groups = GROUPED[case]
        x0 = rng.standard_normal(x_shape, dtype=np.float32)
        w0 = rng.standard_normal(w_shape, dtype=np.float32) * 0.1
        if torch is None:
            return conv_ours(channels_last(x0), w0, True, padding=1, groups=groups)
        return conv_torch(torch, x0, w0, True, padding=1, groups=groups)
    x_shape, w_shape = CONVS[int(case[-1])]
    x0 = rng.standard_normal(x_shape, dtype=np.float32)
    w0 = rng.standard_normal(w_shape, dtype=np.float32) * 0.1
    input_grad = x_shape[1] > 1  # a middle layer passes its gradient on
    return conv_ours(channels_last(x0), w0, input_grad) if torch is None else conv_torch(torch, x0, w0, input_grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed calls in each process")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS and PyTorch threads for both (default: every core)")
    parser.add_argument("--cases", nargs="+", choices=["conv0", "conv1", "pool", *GROUPED],
                        default=["conv0", "conv1", "pool"], help="the cases to run (default: the first three)")
    parser.add_argument("--backend", choices=["numpy", "numba"], help="our backend (default: the default one)")
    add_solo_arguments(parser)
    args = parser.parse_args()
    if args.solo:
        torch = torch_or_none() if args.solo == "torch" else None
        limit_threads(torch, args.threads)
        solo_child(make_step(args.case, torch), args.repeat)
        return
    print(machine())
    names = {f"conv{i}": f"conv2d fwd+bwd x{x_shape} w{w_shape}" for i, (x_shape, w_shape) in enumerate(CONVS)}
    names["pool"] = f"max_pool2d 2x2 fwd+bwd {POOL}"
    names.update({case: f"conv2d fwd+bwd x{x_shape} w{w_shape} groups {groups} pad 1"
                  for case, (x_shape, w_shape, groups) in GROUPED.items()})
    names = {case: names[case] for case in args.cases}
    extra = ["--repeat", str(args.repeat)] + (["--threads", str(args.threads)] if args.threads else [])
    who = solo_frameworks(importlib.util.find_spec("torch") is not None)
    if args.backend:
        who["ours"] = ("ours", {"AUTOGRAD_CNN_BACKEND": args.backend})
    results = solo_in_turn(__file__, list(names), args.runs, who, extra)
    backend = args.backend or "default backend"
    solo_report(results, names, f"Convolution and pooling (float32, ours on {backend}, median of {args.repeat} "
                "calls a process)")


if __name__ == "__main__":
    main()
