"""The lecture CNN's training step built with ``keras`` (channels-last, as on the slides) against
the same model built with ``nn`` (channels-first), and PyTorch CPU for scale: each alone in its
own process, ``--runs`` processes each, taken in turn.

Both of ours run the same step: ``zero_grad``, the model's forward, softmax cross-entropy on
its logits, ``backward``, RMSprop (Keras's defaults). The Keras model is the slides' functional
model with the final Dense giving logits (the loss of ``compile`` reads the logits under a final
softmax in the same way); its input is (N, 28, 28, 1), the nn model's (N, 1, 28, 28).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/keras_step.py [--runs 5] [--clock cpu]

``--clock cpu`` times each step by the process's CPU time (all its threads) rather than the wall
clock: on a machine that other work loads, the wall clock counts their time too.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
from common import machine, module_step, slides_convnet, solo_child, solo_in_turn, spread, torch_or_none

LR, ALPHA, EPS = 1e-3, 0.9, 1e-7


def _data(batch_size: int, channels_last: bool) -> tuple:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(batch_size, 28, 28, 1) if channels_last else (batch_size, 1, 28, 28))
    return x.astype(np.float32), rng.integers(0, 10, size=batch_size)


def step_keras(batch_size: int) -> Any:
    import autograd_cnn as ag
    from autograd_cnn import keras, optim

    ag.manual_seed(0)
    model = slides_convnet(keras, softmax=False)
    model.train()
    return module_step(model, optim.RMSprop(model.parameters(), lr=LR, alpha=ALPHA, eps=EPS), *_data(batch_size, True))


def step_nn(batch_size: int) -> Any:
    import autograd_cnn as ag
    from autograd_cnn import nn, optim

    ag.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Flatten(), nn.Linear(1152, 10))
    return module_step(model, optim.RMSprop(model.parameters(), lr=LR, alpha=ALPHA, eps=EPS), *_data(batch_size, False))


def step_torch(batch_size: int) -> Any:
    torch = torch_or_none()
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Flatten(), nn.Linear(1152, 10))
    optimizer = torch.optim.RMSprop(model.parameters(), lr=LR, alpha=ALPHA, eps=EPS)
    x0, y0 = _data(batch_size, False)
    x, y = torch.tensor(x0), torch.tensor(y0)

    def step() -> Any:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss
    return step


def cpu_median(step: Any, repeat: int, warmup: int = 5) -> float:
    """Median CPU time (s, every thread of the process) of ``repeat`` steps after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeat):
        start = time.process_time()
        step()
        times.append(time.process_time() - start)
    return statistics.median(times)


STEPS = {"keras": step_keras, "nn": step_nn, "torch": step_torch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="processes per model, taken in turn")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=20, help="timed steps per process")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time steps by the wall clock or by the process's CPU time")
    parser.add_argument("--solo", choices=list(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.solo:
        step = STEPS[args.solo](args.batch_size)
        if args.clock == "wall":
            solo_child(step, args.repeat)
        else:
            print(json.dumps({"median": cpu_median(step, args.repeat)}))
        return
    who = {name: (name, {}) for name in STEPS if name != "torch" or torch_or_none() is not None}
    results = solo_in_turn(__file__, ["step"], args.runs, who,
                           ["--batch-size", str(args.batch_size), "--repeat", str(args.repeat), "--clock", args.clock])
    medians = {name: statistics.median(results[("step", name)]) for name in who}
    print(f"### Lecture CNN step, batch {args.batch_size}: keras (channels-last) against nn, {args.clock} time\n\n"
          f"{machine()}\n")
    print("| model | median (ms) | its runs (ms) | spread | against nn |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in who:
        times = results[("step", name)]
        print(f"| {name} | {medians[name] * 1e3:.2f} | {min(times) * 1e3:.2f} to {max(times) * 1e3:.2f} "
              f"| {spread(times):.0%} | {medians[name] / medians['nn']:.2f}x |")


if __name__ == "__main__":
    main()
