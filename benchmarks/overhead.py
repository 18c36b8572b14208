"""Engine overhead and the lecture MLP training step, against PyTorch CPU in the same run.

(a) A graph of 10,000 small ops on 16-element tensors, forward and backward, five graphs
    in a row (the figure is their mean): here the array work is tiny, so the time is the
    engine's own bookkeeping per op.
    The same graph again with anomaly mode off (``ag.set_detect_anomaly(False)``, the default)
    and on (``ag.detect_anomaly()``, against PyTorch's own): off, it costs each op one test of a
    global flag in the forward and one in the backward, also timed alone and printed per op.
(b) One training step of the lecture MLP (Linear 784->512, ReLU, Linear 512->10,
    softmax cross-entropy, backward, an RMSprop update) on a batch of 128 in float32:
    here the time should be the matrix products, as in hand-written NumPy.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/overhead.py
"""
from __future__ import annotations

import argparse
import math
import timeit
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from common import machine, paired_median_times, report, torch_or_none

import autograd_cnn as ag
import autograd_cnn.functional as F

CHAIN_OPS = 10_000  # ops in graph (a); each loop turn below records 4 of them
CHAINS = 5  # graphs (a) timed in a row, the figure being their mean
BATCH, IN, HIDDEN, CLASSES = 128, 784, 512, 10
LR, ALPHA, EPS = 1e-3, 0.9, 1e-7  # Keras's RMSprop defaults


# --------------------------------------------------------------------------- (a) overhead

def chain_ours(x0: np.ndarray, w0: np.ndarray) -> Callable[[], Any]:
    """Forward and backward through CHAIN_OPS tiny ops (mul, add, tanh, relu in turn)."""
    x = ag.tensor(x0, requires_grad=True)
    w = ag.tensor(w0, requires_grad=True)

    def step() -> Any:
        h = x
        for _ in range(CHAIN_OPS // 4):
            h = (h * w + x).tanh().relu()
        h.sum().backward()
        x.grad = w.grad = None
        return h
    return step


def chain_torch(torch: Any, x0: np.ndarray, w0: np.ndarray) -> Callable[[], Any]:
    x = torch.tensor(x0, requires_grad=True)
    w = torch.tensor(w0, requires_grad=True)

    def step() -> Any:
        h = x
        for _ in range(CHAIN_OPS // 4):
            h = (h * w + x).tanh().relu()
        h.sum().backward()
        x.grad = w.grad = None
        return h
    return step


def anomaly_mode(on: bool, step: Callable[[], Any], torch: Any = None) -> Callable[[], Any]:
    """``step`` with anomaly mode set on or off for its duration (PyTorch's, for ``torch``)."""
    def run() -> Any:
        if torch is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PyTorch warns each time anomaly mode starts
                with torch.autograd.set_detect_anomaly(on):
                    return step()
        with ag.set_detect_anomaly(on):
            return step()
    return run


def anomaly_check_seconds() -> float:
    """What anomaly mode costs an op while off: the engine's tests of its flags, the one in
    ``apply`` (forward) and the one in the backward walk, timed alone with the engine's globals."""
    from autograd_cnn import autograd

    n = 1_000_000
    forward = timeit.timeit("_anomaly and not _walking", globals=vars(autograd), number=n) / n
    backward = timeit.timeit("_anomaly", globals=vars(autograd), number=n) / n
    return forward + backward


# --------------------------------------------------------------------------- (b) MLP step

def init_mlp(rng: np.random.Generator) -> list[np.ndarray]:
    """PyTorch's default Linear initialisation: uniform in +-1/sqrt(fan_in)."""
    params = []
    for fan_in, fan_out in ((IN, HIDDEN), (HIDDEN, CLASSES)):
        bound = 1 / math.sqrt(fan_in)
        params.append(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32))
        params.append(rng.uniform(-bound, bound, (fan_out,)).astype(np.float32))
    return params


def mlp_ours(params0: list[np.ndarray], x0: np.ndarray, y0: np.ndarray) -> Callable[[], Any]:
    params = [ag.tensor(p, requires_grad=True) for p in params0]
    squares = [np.zeros_like(p) for p in params0]
    x, y = ag.tensor(x0), ag.tensor(y0)

    def step() -> Any:
        w1, b1, w2, b2 = params
        loss = F.cross_entropy(F.linear(F.relu(F.linear(x, w1, b1)), w2, b2), y)
        loss.backward()
        for p, s in zip(params, squares):  # RMSprop, in place on the arrays
            g = p.grad.data
            s *= ALPHA
            s += (1 - ALPHA) * g * g
            p.data -= LR * g / (np.sqrt(s) + EPS)
            p.grad = None
        return loss
    return step


def mlp_torch(torch: Any, params0: list[np.ndarray], x0: np.ndarray, y0: np.ndarray) -> Callable[[], Any]:
    params = [torch.tensor(p, requires_grad=True) for p in params0]
    squares = [torch.zeros_like(p) for p in params]
    x, y = torch.tensor(x0), torch.tensor(y0)
    fn = torch.nn.functional

    def step() -> Any:
        w1, b1, w2, b2 = params
        loss = fn.cross_entropy(fn.linear(fn.relu(fn.linear(x, w1, b1)), w2, b2), y)
        loss.backward()
        with torch.no_grad():
            for p, s in zip(params, squares):
                g = p.grad
                s.mul_(ALPHA).addcmul_(g, g, value=1 - ALPHA)
                p.sub_(LR * g / (s.sqrt() + EPS))
                p.grad = None
        return loss
    return step


def mlp_numpy(params0: list[np.ndarray], x0: np.ndarray, y0: np.ndarray) -> Callable[[], Any]:
    """The same step written by hand in NumPy: the floor the engine is compared with."""
    params = [p.copy() for p in params0]
    squares = [np.zeros_like(p) for p in params0]
    onehot = np.eye(CLASSES, dtype=np.float32)[y0]

    def step() -> Any:
        w1, b1, w2, b2 = params
        h = x0 @ w1.T + b1
        a = np.maximum(h, 0)
        z = a @ w2.T + b2
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(BATCH), y0]).mean()
        gz = (p - onehot) / BATCH
        ga = gz @ w2
        gh = ga * (h > 0)
        grads = [gh.T @ x0, gh.sum(axis=0), gz.T @ a, gz.sum(axis=0)]
        for p_, s, g in zip(params, squares, grads):
            s *= ALPHA
            s += (1 - ALPHA) * g * g
            p_ -= LR * g / (np.sqrt(s) + EPS)
        return loss
    return step


def in_a_row(step: Callable[[], Any]) -> Callable[[], None]:
    """CHAINS calls of ``step`` as one timed call. Python's cycle collector makes a full pass
    over the heap every few chains (a slow pass, with PyTorch's objects in the same process):
    timed one at a time, a median would mostly leave those chains out; in a row, each
    timed figure holds its share of them."""
    def run() -> None:
        for _ in range(CHAINS):
            step()
    return run


def paired(ours: Callable[[], Any], theirs: Callable[[], Any] | None, rounds: int) -> tuple:
    """Median times of ``ours`` and ``theirs`` taken in turn, one call per block after one untimed."""
    return paired_median_times(ours, theirs, repeat=rounds, warmup=1, rounds=rounds)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed runs of each case (median taken)")
    parser.add_argument("--quick", action="store_true", help="4 rounds: a smoke run, not figures to report")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 4
    print(machine())
    print()
    torch = torch_or_none()
    rng = np.random.default_rng(0)

    x0 = rng.uniform(-1, 1, 16).astype(np.float32)
    w0 = rng.uniform(0.5, 1.0, 16).astype(np.float32)
    rows = []
    ours, theirs = paired(in_a_row(chain_ours(x0, w0)), in_a_row(chain_torch(torch, x0, w0)) if torch else None,
                          max(3, args.rounds // 2))
    rows.append((f"{CHAIN_OPS:,} tiny ops, forward + backward", ours / CHAINS, theirs and theirs / CHAINS))
    for on in (False, True):
        ours, theirs = paired(in_a_row(anomaly_mode(on, chain_ours(x0, w0))),
                              in_a_row(anomaly_mode(on, chain_torch(torch, x0, w0), torch)) if torch else None,
                              max(3, args.rounds // 4) if on else max(3, args.rounds // 2))
        rows.append((f"same, anomaly mode {'on' if on else 'off'}", ours / CHAINS, theirs and theirs / CHAINS))
    per_op = rows[1][1] / CHAIN_OPS
    check = anomaly_check_seconds()
    print(f"anomaly mode off: its flag tests take {check * 1e9:.0f} ns an op, {check / per_op:.2%} of the "
          f"{per_op * 1e6:.2f} us an op of (a) takes; on: {rows[2][1] / rows[1][1]:.1f}x the time of off\n")

    params0 = init_mlp(rng)
    xb = rng.uniform(0, 1, (BATCH, IN)).astype(np.float32)
    yb = rng.integers(0, CLASSES, BATCH)
    torch_step = mlp_torch(torch, params0, xb, yb) if torch else None
    ours, theirs = paired(mlp_ours(params0, xb, yb), torch_step, args.rounds)
    rows.append(("MLP 784-512-10 step, batch 128", ours, theirs))
    by_hand, theirs = paired(mlp_numpy(params0, xb, yb), torch_step, args.rounds)
    rows.append(("same step in hand-written NumPy", by_hand, theirs))
    return report(rows, "Engine overhead and the MLP step (float32, CPU)")


if __name__ == "__main__":
    main()
