"""Accuracy with the lecture recipe, next to PyTorch's for the same recipe in the same run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/accuracy.py [--quick | --full]

The recipe: RMSprop (lr 1e-3, alpha 0.9, eps 1e-7: Keras's defaults), batch 128, shuffled each
epoch, sparse categorical cross-entropy, PyTorch's default initialisation in both engines.
  --quick  MNIST-5k (the shipped sample, shuffled with seed 0, 4,000 train / 1,000 test),
           10 epochs, the lecture MLP and CNN.
  default  the same, plus one epoch of the lecture CNN on full Fashion-MNIST, timed in both,
           each framework alone in its own process, ``--runs`` (3) of each taken in turn.
  --full   the same, plus 5 epochs of each model on full Fashion-MNIST (test accuracy).
``--seeds N`` averages N runs per model (seeds 0 .. N-1; the range is shown).
A second table starts both engines from PyTorch's initial weights and feeds them the same
batches, so what differs is the engines' arithmetic alone.
Target: within one point of PyTorch's accuracy; a CNN epoch at most 1.3x PyTorch's time.
"""
from __future__ import annotations

import argparse
import datetime
import json
import time
from typing import Any

import numpy as np
from common import add_solo_arguments, machine, solo_frameworks, solo_in_turn, solo_report, torch_or_none

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import data, models

BATCH, LR, ALPHA, EPS = 128, 1e-3, 0.9, 1e-7


def prepare(x: np.ndarray, kind: str) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 in [0, 1], (N, 784) for the MLP or (N, 1, 28, 28) for the CNN."""
    shape = (len(x), 28 * 28) if kind == "mlp" else (len(x), 1, 28, 28)
    return x.reshape(shape).astype(np.float32) / 255


def ours(kind: str, split: tuple, epochs: int, seed: int) -> tuple[float, float]:
    """(test accuracy, seconds per epoch) of our lecture model trained with the recipe."""
    (x_train, y_train), (x_test, y_test) = split
    ag.manual_seed(seed)
    model = models.lecture_mlp() if kind == "mlp" else models.lecture_cnn()
    model.compile(optimizer=ag.optim.RMSprop(model.parameters(), lr=LR, alpha=ALPHA, eps=EPS),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(prepare(x_train, kind), y_train, epochs=epochs, batch_size=BATCH, verbose=0)
    per_epoch = (time.perf_counter() - start) / epochs
    _, accuracy = model.evaluate(prepare(x_test, kind), y_test, batch_size=BATCH, verbose=0)
    return float(accuracy), per_epoch


def torch_model(torch: Any, kind: str) -> Any:
    """The same architectures in PyTorch (ending in logits; its cross-entropy adds the softmax)."""
    nn = torch.nn
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Flatten(), nn.Linear(1152, 10))


def theirs(torch: Any, kind: str, split: tuple, epochs: int, seed: int) -> tuple[float, float]:
    """(test accuracy, seconds per epoch) of the PyTorch equivalent, trained the same way."""
    (x_train, y_train), (x_test, y_test) = split
    torch.manual_seed(seed)
    model = torch_model(torch, kind)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=LR, alpha=ALPHA, eps=EPS)
    x = torch.from_numpy(prepare(x_train, kind))
    y = torch.from_numpy(y_train.astype(np.int64))
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), BATCH):
            rows = order[i:i + BATCH]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[rows]), y[rows]).backward()
            optimizer.step()
    per_epoch = (time.perf_counter() - start) / epochs
    with torch.no_grad():
        predicted = model(torch.from_numpy(prepare(x_test, kind))).argmax(1).numpy()
    return float((predicted == y_test).mean()), per_epoch


def same_start(torch: Any, kind: str, split: tuple, epochs: int, seed: int) -> tuple[float, float]:
    """(ours, PyTorch's) test accuracy when both start from PyTorch's initial weights and see the same batches.

    What is left of the difference is the two engines' arithmetic, not the luck of the draw.
    """
    (x_train, y_train), (x_test, y_test) = split
    x, y, x_test = prepare(x_train, kind), y_train.astype(np.int64), prepare(x_test, kind)
    torch.manual_seed(seed)
    their_model = torch_model(torch, kind)
    our_model = models.lecture_mlp(softmax=False) if kind == "mlp" else models.lecture_cnn(softmax=False)
    # Both are Sequentials with the same layer indices, so the state dicts share their keys.
    our_model.load_state_dict({k: v.numpy() for k, v in their_model.state_dict().items()})
    their_opt = torch.optim.RMSprop(their_model.parameters(), lr=LR, alpha=ALPHA, eps=EPS)
    our_opt = ag.optim.RMSprop(our_model.parameters(), lr=LR, alpha=ALPHA, eps=EPS)
    backend = ag.get_backend()
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), BATCH):
            rows = order[i:i + BATCH]
            their_opt.zero_grad()
            torch.nn.functional.cross_entropy(their_model(torch.from_numpy(x[rows])),
                                              torch.from_numpy(y[rows])).backward()
            their_opt.step()
            our_opt.zero_grad()
            F.cross_entropy(our_model(ag.tensor(x[rows], backend=backend)),
                            ag.tensor(y[rows], backend=backend)).backward()
            our_opt.step()
    with torch.no_grad():
        theirs_acc = float((their_model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    with ag.no_grad():
        ours_acc = float((our_model(ag.tensor(x_test, backend=backend)).numpy().argmax(1) == y_test).mean())
    return ours_acc, theirs_acc


def same_start_rows(torch: Any, name: str, split: tuple, epochs: int, seed: int) -> None:
    for kind in ("mlp", "cnn"):
        acc, t_acc = same_start(torch, kind, split, epochs, seed)
        print(f"| {name} | lecture {kind.upper()} | {epochs} | {acc:.4f} | {t_acc:.4f} | "
              f"{100 * (acc - t_acc):+.1f} |", flush=True)


SAME_START_HEADER = ("\nSame start: both engines from PyTorch's initial weights (seed 0), fed the same batches.\n\n"
                     "| data set | model | epochs | autograd_cnn accuracy | PyTorch accuracy | difference (points) |\n"
                     "| --- | --- | ---: | ---: | ---: | ---: |")


def summarise(values: list[float]) -> str:
    """The mean, with the range when there are several runs."""
    mean = sum(values) / len(values)
    return f"{mean:.4f}" if len(values) == 1 else f"{mean:.4f} ({min(values):.3f}-{max(values):.3f})"


def compare(torch: Any, name: str, split: tuple, epochs: int, seeds: list[int]) -> None:
    """One table row per model: test accuracy of both engines, averaged over ``seeds``."""
    for kind in ("mlp", "cnn"):
        runs = [ours(kind, split, epochs, seed) for seed in seeds]
        acc, sec = [a for a, _ in runs], sum(s for _, s in runs) / len(runs)
        line = f"| {name} | lecture {kind.upper()} | {epochs} | {len(seeds)} | {summarise(acc)} | "
        if torch is not None:
            t_runs = [theirs(torch, kind, split, epochs, seed) for seed in seeds]
            t_acc, t_sec = [a for a, _ in t_runs], sum(s for _, s in t_runs) / len(t_runs)
            difference = 100 * (sum(acc) / len(acc) - sum(t_acc) / len(t_acc))
            line += f"{summarise(t_acc)} | {difference:+.1f} | {sec:.1f} / {t_sec:.1f} |"
        else:
            line += f"not installed | n/a | {sec:.1f} / n/a |"
        print(line, flush=True)


def epoch_seconds(framework: str, seed: int = 0) -> float:
    """In a child process: one epoch of the lecture CNN on the whole Fashion-MNIST training set
    (seconds), trained by ``framework`` ("ours" or "torch")."""
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist()
    one_epoch = ((x_train, y_train), (x_test[:1000], y_test[:1000]))  # the timing is of training alone
    if framework == "ours":
        return ours("cnn", one_epoch, 1, seed)[1]
    return theirs(torch_or_none(), "cnn", one_epoch, 1, seed)[1]


def epoch_time(with_torch: bool, runs: int) -> None:
    """One epoch of the lecture CNN on full Fashion-MNIST, each framework alone in its own
    process, ``runs`` processes each taken in turn."""
    results = solo_in_turn(__file__, ["fashion-epoch"], runs, solo_frameworks(with_torch))
    solo_report(results, {"fashion-epoch": "lecture CNN, one epoch of Fashion-MNIST (60,000 images)"},
                "One epoch of the lecture CNN", unit="s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="MNIST-5k only")
    size.add_argument("--full", action="store_true", help="also 5 epochs of each model on full Fashion-MNIST")
    parser.add_argument("--seeds", type=int, default=1, help="runs per model, seeds 0, 1, ... (default 1)")
    add_solo_arguments(parser, runs=3)
    args = parser.parse_args(argv)
    if args.solo:
        print(json.dumps({"median": epoch_seconds(args.solo)}))
        return 0
    torch = torch_or_none()
    print(f"machine: {machine()}\ndate: {datetime.date.today()}\n")
    header = ["| data set | model | epochs | runs | autograd_cnn accuracy | PyTorch accuracy | difference (points) "
              "| seconds per epoch (ours / PyTorch) |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    print("\n".join(header), flush=True)
    seeds = list(range(args.seeds))
    sample = data.load_sample(split=True, seed=0)
    compare(torch, "MNIST-5k (4,000 / 1,000)", sample, 10, seeds)
    fashion = None
    if not args.quick:
        try:
            fashion = data.load_fashion_mnist()
        except data.DataError as e:
            print(f"\nFashion-MNIST parts skipped: {e}")
    if args.full and fashion is not None:
        compare(torch, "Fashion-MNIST (60,000 / 10,000)", fashion, 5, seeds)
    if torch is not None:
        print(SAME_START_HEADER, flush=True)
        same_start_rows(torch, "MNIST-5k (4,000 / 1,000)", sample, 10, 0)
        if args.full and fashion is not None:
            same_start_rows(torch, "Fashion-MNIST (60,000 / 10,000)", fashion, 5, 0)
    if fashion is None:
        return 0
    print()
    epoch_time(torch is not None, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
