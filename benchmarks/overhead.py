"""Engine overhead and the lecture MLP training step, against PyTorch CPU in the same run.

(a) A graph of 10,000 small ops on 16-element tensors, forward and backward, five graphs
    in a row (the figure is their mean): here the array work is tiny, so the time is the
    engine's own bookkeeping per op.
    The same graph again with anomaly mode off (``ag.set_detect_anomaly(False)``, the default)
    and on (``ag.detect_anomaly()``, against PyTorch's own): off, it costs each op one test of the
    thread's modes in the forward and one in the backward, also timed alone and printed per op.
(b) One training step of the lecture MLP (Linear 784->512, ReLU, Linear 512->10,
    softmax cross-entropy, backward, an RMSprop update) on a batch of 128 in float32:
    here the time should be the matrix products, as in hand-written NumPy.

Each case runs in processes of its own, one framework a process, ``--runs`` of each taken in turn.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/overhead.py
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import timeit
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from common import add_solo_arguments, machine, solo_child, solo_frameworks, solo_in_turn, solo_report, torch_or_none

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
    """What anomaly mode costs an op while off: the engine's tests of its mode, the one in
    ``apply`` (forward, on the modes it has read already for grad mode) and the one in the
    backward walk (which reads the modes for it), timed alone."""
    from autograd_cnn.engine.modes import MODES

    n = 1_000_000
    forward = timeit.timeit("modes.anomaly and not modes.walking", globals={"modes": MODES.get()}, number=n) / n
    backward = timeit.timeit("MODES.get().anomaly", globals={"MODES": MODES}, number=n) / n
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


#: The cases, each timed alone in a process per framework: (ours, PyTorch's) step makers from
#: (torch, rng), how many calls a process times, and what one call holds (CHAINS graphs or one step).
def cases() -> dict:
    def chain(on: bool | None) -> tuple:
        def make(torch: Any, rng: np.random.Generator) -> Callable[[], Any]:
            x0, w0 = rng.uniform(-1, 1, 16).astype(np.float32), rng.uniform(0.5, 1.0, 16).astype(np.float32)
            step = chain_ours(x0, w0) if torch is None else chain_torch(torch, x0, w0)
            return in_a_row(step if on is None else anomaly_mode(on, step, torch))
        return make

    def mlp(by_hand: bool) -> Callable:
        def make(torch: Any, rng: np.random.Generator) -> Callable[[], Any]:
            params0 = init_mlp(rng)
            xb, yb = rng.uniform(0, 1, (BATCH, IN)).astype(np.float32), rng.integers(0, CLASSES, BATCH)
            if torch is not None:
                return mlp_torch(torch, params0, xb, yb)
            return (mlp_numpy if by_hand else mlp_ours)(params0, xb, yb)
        return make

    return {"chain": (chain(None), 8, CHAINS, f"{CHAIN_OPS:,} tiny ops, forward + backward"),
            "anomaly-off": (chain(False), 8, CHAINS, "same, anomaly mode off"),
            "anomaly-on": (chain(True), 3, CHAINS, "same, anomaly mode on"),
            "mlp": (mlp(False), 30, 1, "MLP 784-512-10 step, batch 128"),
            "mlp-numpy": (mlp(True), 30, 1, "same step in hand-written NumPy (PyTorch: its MLP step)")}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one process each: a smoke run, not figures to report")
    add_solo_arguments(parser)
    args = parser.parse_args(argv)
    table = cases()
    if args.solo:
        make, repeat, _, _ = table[args.case]
        torch = torch_or_none() if args.solo == "torch" else None
        solo_child(make(torch, np.random.default_rng(0)), repeat, warmup=2)
        return ""
    print(machine())
    print()
    who = solo_frameworks(importlib.util.find_spec("torch") is not None, malloc_kept=False)
    results = solo_in_turn(__file__, list(table), 1 if args.quick else args.runs, who)
    per_call = {case: entry[2] for case, entry in table.items()}
    results = {(case, w): [t / per_call[case] for t in times] for (case, w), times in results.items()}
    off, on = (statistics.median(results[(case, "ours")]) for case in ("anomaly-off", "anomaly-on"))
    per_op = off / CHAIN_OPS
    check = anomaly_check_seconds()
    print(f"anomaly mode off: its flag tests take {check * 1e9:.0f} ns an op, {check / per_op:.2%} of the "
          f"{per_op * 1e6:.2f} us an op of (a) takes; on: {on / off:.1f}x the time of off\n")
    return solo_report(results, {case: entry[3] for case, entry in table.items()},
                       "Engine overhead and the MLP step (float32, CPU)")


if __name__ == "__main__":
    main()
