"""The lecture CNN written with keras (channels last, as the slides) against the same model written
with nn (channels first), and PyTorch CPU: the time of a training step under fit.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/keras_vs_nn.py

Both of ours are the slides' convnet (104,202 parameters) compiled as the slides compile it,
``compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")``, and trained by
``fit(x, y, epochs=1, batch_size=128, shuffle=False, verbose=0)`` on ``--samples`` MNIST-shaped
float32 images: the one Trainer under both, so the difference is the Keras layers' own cost
(channels-last images, their checks). PyTorch runs the same steps in a plain loop (RMSprop with
Keras's defaults, softmax cross-entropy). Each framework alone in its own process, ``--runs``
processes each, taken in turn; a process's figure is the median of ``--repeat`` fit calls
divided by the steps of one call.
"""
from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
from common import (
    add_solo_arguments,
    limit_threads,
    machine,
    slides_convnet,
    solo_child,
    solo_in_turn,
    spread,
    torch_or_none,
)

FRAMEWORKS = ("nn", "keras", "torch")


def data(samples: int, channels_last: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(samples, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, size=samples)
    return (x if channels_last else np.ascontiguousarray(x.transpose(0, 3, 1, 2))), y


def keras_model() -> Any:
    """The slides' convnet, as they write it."""
    from autograd_cnn import keras

    return slides_convnet(keras)


def fit_step(which: str, samples: int, batch_size: int) -> Callable[[], Any]:
    """One call of fit over ``samples`` images, for the nn or the keras model."""
    if which == "keras":
        model = keras_model()
    else:
        from autograd_cnn import models

        model = models.lecture_cnn()
    x, y = data(samples, channels_last=which == "keras")
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")

    def step() -> Any:
        return model.fit(x, y, epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
    return step


def torch_step(torch: Any, samples: int, batch_size: int) -> Callable[[], Any]:
    """The same epoch in PyTorch: the same layers, RMSprop with Keras's defaults."""
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Flatten(), nn.Linear(1152, 10))
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    x0, y0 = data(samples, channels_last=False)
    x, y = torch.tensor(x0), torch.tensor(y0)

    def step() -> Any:
        for start in range(0, samples, batch_size):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x[start:start + batch_size]), y[start:start + batch_size])
            loss.backward()
            optimizer.step()
        return loss
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1024, help="images in one fit call")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5, help="timed fit calls in each process")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS and PyTorch threads for all (default: every core)")
    parser.add_argument("--quick", action="store_true", help="fewer images and processes: a smoke run")
    add_solo_arguments(parser, frameworks=FRAMEWORKS)
    args = parser.parse_args()
    if args.quick:
        args.samples, args.repeat, args.runs = 256, 2, 1
    steps = math.ceil(args.samples / args.batch_size)
    if args.solo:
        torch = torch_or_none() if args.solo == "torch" else None
        limit_threads(torch, args.threads)
        step = torch_step(torch, args.samples, args.batch_size) if torch is not None else \
            fit_step(args.solo, args.samples, args.batch_size)
        solo_child(step, args.repeat, warmup=1)
        return
    print(machine())
    torch = torch_or_none()
    who = {name: (name, {}) for name in FRAMEWORKS if name != "torch" or torch is not None}
    extra = ["--samples", str(args.samples), "--batch-size", str(args.batch_size), "--repeat", str(args.repeat)]
    if args.threads:
        extra += ["--threads", str(args.threads)]
    results = solo_in_turn(__file__, ["cnn"], args.runs, who, extra)
    per_step = {name: [t / steps for t in results[("cnn", name)]] for name in who}
    medians = {name: statistics.median(times) for name, times in per_step.items()}
    names = {"nn": "nn.Sequential (channels first)", "keras": "keras.Model (channels last)",
             "torch": "PyTorch CPU (channels first)"}
    lines = [f"### The lecture CNN under fit: keras against nn (float32, batch {args.batch_size}, "
             f"{steps} steps a fit call)", "", "| model | ms per step | its runs (ms) | spread | against nn "
             "| against PyTorch CPU |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, times in per_step.items():
        against_torch = f"{medians[name] / medians['torch']:.2f}x" if "torch" in medians else "n/a"
        lines.append(f"| {names[name]} | {medians[name] * 1e3:.1f} | {min(times) * 1e3:.1f} to "
                     f"{max(times) * 1e3:.1f} | {spread(times):.0%} | {medians[name] / medians['nn']:.2f}x | "
                     f"{against_torch} |")
    lines += ["", f"Each framework alone in its own process, {args.runs} processes each, taken in turn; a "
              f"process's figure is the median of {args.repeat} fit calls over {args.samples} images, per step."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
