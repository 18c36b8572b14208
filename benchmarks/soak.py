"""Soak: 1,000 training steps of the lecture CNN, through ``fit`` and through a hand-written loop,
with the process's resident memory (RSS) sampled every 50 steps. Past the warm-up (the first fifth
of the steps: caches, the allocator's pools, the optimizer's state) it must stay within +-5% of its
value at the end of the warm-up: memory that grows step by step is a leak (a graph kept alive by a
reference, a list that only grows), and a long run would end in the kernel's OOM killer.

    python benchmarks/soak.py            # 1,000 steps each, batch 64 of the shipped digits
    python benchmarks/soak.py --quick    # 200 steps each: a smoke run

Prints each series (MiB) and the verdict; exits 1 when either run leaves the band.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np
from common import machine

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import data, models, nn, optim

EVERY = 50  # steps between two samples of the RSS
BAND = 0.05  # the largest drift allowed past the warm-up, as a fraction


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux's /proc; psutil elsewhere), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss


class Sampler(nn.Callback):
    """The RSS every EVERY steps of fit (a step ends after the optimizer's update)."""

    def __init__(self, record: Callable[[int], None]) -> None:
        self.record, self.steps = record, 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps += 1
        self.record(self.steps)


def series() -> tuple[list[tuple[int, int]], Callable[[int], None]]:
    samples: list[tuple[int, int]] = []

    def record(step: int) -> None:
        if step % EVERY == 0:
            samples.append((step, rss_bytes()))
    return samples, record


def through_fit(x, y, steps: int, batch_size: int) -> list[tuple[int, int]]:
    """``steps`` steps of compile/fit: the data holds EVERY batches, so each epoch is EVERY steps."""
    samples, record = series()
    ag.manual_seed(0)
    model = models.lecture_cnn()
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=steps // EVERY, batch_size=batch_size, verbose=0, callbacks=[Sampler(record)])
    return samples


def through_a_loop(x, y, steps: int, batch_size: int) -> list[tuple[int, int]]:
    """The same steps written out: zero_grad, forward, cross-entropy on the logits, backward, step."""
    samples, record = series()
    ag.manual_seed(0)
    model = models.lecture_cnn(softmax=False)
    opt = optim.RMSprop(model.parameters())
    loader = data.DataLoader(x, y, batch_size=batch_size, seed=0)
    step = 0
    while step < steps:
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            step += 1
            record(step)
            if step == steps:
                break
    return samples


def verdict(name: str, samples: list[tuple[int, int]], warmup: int) -> bool:
    """Print the series and whether every sample past the warm-up lies within BAND of the first."""
    mib = [(step, rss / 2**20) for step, rss in samples]
    print(f"{name}: RSS (MiB) every {EVERY} steps: " + ", ".join(f"{v:.1f}" for _, v in mib))
    after = [(step, v) for step, v in mib if step >= warmup]
    if len(after) < 2:
        print(f"{name}: too few samples past the warm-up of {warmup} steps to judge")
        return True
    start = after[0][1]
    worst_step, worst = max(after, key=lambda s: abs(s[1] - start))
    drift = (worst - start) / start
    ok = abs(drift) <= BAND
    print(f"{name}: from step {after[0][0]} ({start:.1f} MiB) the largest drift is {drift:+.1%} at step "
          f"{worst_step} ({worst:.1f} MiB): {'within' if ok else 'OUTSIDE'} +-{BAND:.0%}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps of each run (a multiple of 50)")
    parser.add_argument("--batch-size", type=int, default=64, help="images a step (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="200 steps of each: a smoke run")
    args = parser.parse_args(argv)
    steps = 200 if args.quick else args.steps
    if steps < 2 * EVERY or steps % EVERY:
        parser.error(f"--steps must be a multiple of {EVERY} of at least {2 * EVERY}, got {steps}")
    if rss_bytes() is None:
        print("soak: no way to read the resident memory here (no /proc, no psutil); nothing to measure")
        return 0
    print(machine())
    print(f"the lecture CNN, {steps} steps of {args.batch_size} shipped digits each, backend {ag.get_backend().name}")
    (x, y), _ = data.load_images("sample")
    n = EVERY * args.batch_size  # EVERY steps an epoch, so fit's epochs end on a sample
    repeats = -(-n // len(x))  # a large batch needs more than the 4,000 digits: they repeat
    x, y = np.concatenate([x] * repeats)[:n], np.concatenate([y] * repeats)[:n]
    warmup = steps // 5
    ok = True
    for name, run in (("fit", through_fit), ("loop", through_a_loop)):
        start = time.perf_counter()
        samples = run(x, y, steps, args.batch_size)
        print(f"{name}: {steps} steps in {time.perf_counter() - start:.1f} s")
        ok = verdict(name, samples, warmup) and ok
    print(f"verdict: {'steady' if ok else 'the memory drifts: look for a leak'} "
          f"(past the first {warmup} steps, within +-{BAND:.0%})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
