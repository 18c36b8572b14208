"""The lectures' models on our two CPU backends, PyTorch CPU and the slides' own stack (Keras 3 on
TensorFlow CPU): training step time, a Fashion-MNIST ``fit`` epoch, and peak memory.

Cases (float32, batch 128):
- ``cnn``: one training step of the lecture CNN (Conv 32/64/128 + MaxPool + Dense 10, 104,202
  parameters), RMSprop (lr 1e-3, rho/alpha 0.9, eps 1e-7). Ours: the model's ops through
  ``autograd_cnn.functional`` and ``optim.RMSprop`` (``train_step.step_ours``); PyTorch the same
  (``train_step.step_torch``); Keras: the slides' exact model, channels-last, ``train_on_batch``.
- ``mlp``: one step of the lecture MLP (Dense 512 relu, Dense 10), the same optimizer.
- ``tiny``: forward and backward through 10,000 tiny ops (``overhead.chain_ours``): the engine's
  own cost per op (ours only: numba must not be slower than numpy here).
- ``norm``: ``BatchNorm2d(32)`` then ``Dropout(0.5)``, training, forward and backward (a gradient of
  ones) on (128, 32, 26, 26), the lecture CNN's first activation: ours on a channels-last array, as
  a conv hands it on; PyTorch on its own (N, C, H, W) layout (no Keras process).
- ``fit``: one epoch of ``fit`` on Fashion-MNIST's 60,000 training images (the lecture CNN,
  ``compile("rmsprop", "sparse_categorical_crossentropy", ["accuracy"])``, shuffled; PyTorch: a
  loop over shuffled batches). After a warm-up ``fit`` on 1,024 images. Needs the data set
  (``AUTOGRAD_CNN_DATA`` or the user's cache; skipped when absent).

Each framework alone in its own process, ``--runs`` processes each, taken in turn
(``common.solo_in_turn``); a process's figure is the median of its timed steps (one epoch for
``fit``). Peak memory: the growth of the process's peak resident size over its first three steps
(over the warm-up and the epoch for ``fit``) from its size with the model and data made, after
one step on a batch of two (kernels compiled or loaded, libraries warm; ``/proc/self/clear_refs``
resets the peak): what the training itself allocates. ``--threads N`` holds every framework
to N threads (a loaded machine: thread pools that spin waiting for work distort the figures).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/lecture_stacks.py [--cases cnn mlp] [--runs 3]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from common import (
    add_solo_arguments,
    machine,
    median_time,
    module_step,
    slides_convnet,
    solo_in_turn,
    spread,
    torch_or_none,
)

BATCH, LR, RHO, EPS = 128, 1e-3, 0.9, 1e-7
CASES = {"cnn": "lecture CNN training step, batch 128", "mlp": "lecture MLP training step, batch 128",
         "tiny": "10,000 tiny ops, forward and backward",
         "norm": "BatchNorm2d + Dropout fwd+bwd (128, 32, 26, 26)",
         "fit": "Fashion-MNIST fit, 1 epoch (60,000 images)"}
FRAMEWORKS = ("ours", "torch", "keras")
CASE_FRAMEWORKS = {"tiny": ("ours",), "norm": ("ours", "torch")}  # the others: every framework
NORM_SHAPE = (32, 26, 26)  # one image's (C, H, W) for the norm case


# --------------------------------------------------------------------------- the steps


def mlp_data(batch: int = BATCH) -> tuple:
    rng = np.random.default_rng(1)
    return rng.uniform(0, 1, (batch, 784)).astype(np.float32), rng.integers(0, 10, batch)


def mlp_ours(batch: int) -> Callable[[], Any]:
    import autograd_cnn as ag
    from autograd_cnn import models, optim

    ag.manual_seed(0)
    model, (x0, y0) = models.lecture_mlp(softmax=False), mlp_data(batch)
    return module_step(model, optim.RMSprop(model.parameters(), lr=LR, alpha=RHO, eps=EPS), x0, y0)


def mlp_torch(torch: Any, batch: int) -> Callable[[], Any]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 512), torch.nn.ReLU(),
                                torch.nn.Linear(512, 10))
    optimizer = torch.optim.RMSprop(model.parameters(), lr=LR, alpha=RHO, eps=EPS)
    x0, y0 = mlp_data(batch)
    x, y = torch.tensor(x0), torch.tensor(y0)

    def step() -> Any:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss
    return step


def norm_data(batch: int) -> np.ndarray:
    return np.random.default_rng(2).standard_normal((batch,) + NORM_SHAPE, dtype=np.float32)


def norm_ours(batch: int) -> Callable[[], Any]:
    import autograd_cnn as ag
    from autograd_cnn import nn

    ag.manual_seed(0)
    bn, drop = nn.BatchNorm2d(NORM_SHAPE[0]), nn.Dropout(0.5)
    x0 = norm_data(batch)
    x = ag.tensor(np.ascontiguousarray(x0.transpose(0, 2, 3, 1)), requires_grad=True).transpose(0, 3, 1, 2)

    def step() -> Any:
        y = drop(bn(x))
        y.backward(ag.ones_like(y))
        x.grad = bn.weight.grad = bn.bias.grad = None
    return step


def norm_torch(torch: Any, batch: int) -> Callable[[], Any]:
    torch.manual_seed(0)
    bn, drop = torch.nn.BatchNorm2d(NORM_SHAPE[0]), torch.nn.Dropout(0.5)
    x = torch.tensor(norm_data(batch), requires_grad=True)

    def step() -> Any:
        y = drop(bn(x))
        y.backward(torch.ones_like(y))
        x.grad = bn.weight.grad = bn.bias.grad = None
    return step


def keras_model(kind: str) -> Any:
    """The slides' models, as written there (Keras 3 on TensorFlow), compiled as there."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:  # --threads: TensorFlow's own pools held to that count too
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(threads))
    import keras
    from keras import layers

    if kind == "mlp":
        model = keras.Sequential([keras.Input(shape=(784,)), layers.Dense(512, activation="relu"),
                                  layers.Dense(10, activation="softmax")])
    else:
        model = slides_convnet(keras)
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=LR, rho=RHO, epsilon=EPS),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"] if kind == "fit" else None)
    return model


def keras_step(kind: str, size: int) -> Callable[[], Any]:
    from train_step import batch

    model = keras_model(kind)
    if kind == "mlp":
        x, y = mlp_data(size)
    else:
        x, y = batch(size)
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # channels-last, as Keras takes images
    return lambda: model.train_on_batch(x, y)


def make_step(framework: str, case: str, batch: int = BATCH) -> Callable[[], Any]:
    if framework == "keras":
        return keras_step(case, batch)
    if case == "tiny":
        from overhead import chain_ours

        rng = np.random.default_rng(0)
        return chain_ours(rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32))
    if case == "norm":
        return norm_torch(_torch(), batch) if framework == "torch" else norm_ours(batch)
    if case == "cnn":
        from train_step import step_ours, step_torch

        if framework == "torch":
            return step_torch(_torch(), "cpu", batch)[0]
        import autograd_cnn as ag

        return step_ours(ag.get_backend().name, batch)[0]
    return mlp_torch(_torch(), batch) if framework == "torch" else mlp_ours(batch)


def _torch() -> Any:
    """PyTorch on --threads threads where given (OMP_NUM_THREADS in the child), else every core."""
    torch = torch_or_none()
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    return torch


# --------------------------------------------------------------------------- fit


def fashion_mnist() -> tuple | None:
    """Fashion-MNIST's training images (N, 28, 28) in [0, 1] and labels, or None where absent."""
    from autograd_cnn import data

    try:
        (x, y), _ = data.load_fashion_mnist(download_missing=False)
    except Exception:  # not on this machine: the case is skipped
        return None
    return (np.asarray(x, dtype=np.float32).reshape(-1, 28, 28) / np.float32(255)), np.asarray(y, dtype=np.int64)


def make_fit(framework: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(a warm-up fit on 1,024 images, one epoch on all of them)."""
    x, y = fashion_mnist()
    if framework == "keras":
        model, images = keras_model("fit"), x[..., None]
        return (lambda: model.fit(images[:1024], y[:1024], epochs=1, batch_size=BATCH, verbose=0),
                lambda: model.fit(images, y, epochs=1, batch_size=BATCH, verbose=0))
    if framework == "torch":
        return torch_fit(_torch(), x, y)
    import autograd_cnn as ag
    from autograd_cnn import models

    ag.manual_seed(0)
    model, images = models.lecture_cnn(), x[:, None]
    model.compile("rmsprop", "sparse_categorical_crossentropy", ["accuracy"])
    return (lambda: model.fit(images[:1024], y[:1024], epochs=1, batch_size=BATCH, verbose=0),
            lambda: model.fit(images, y, epochs=1, batch_size=BATCH, verbose=0))


def torch_fit(torch: Any, x: np.ndarray, y: np.ndarray) -> tuple:
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Flatten(), nn.Linear(1152, 10))
    optimizer = torch.optim.RMSprop(model.parameters(), lr=LR, alpha=RHO, eps=EPS)
    images, labels = torch.tensor(x[:, None]), torch.tensor(y)

    def epoch(count: int) -> None:
        order = torch.randperm(count)
        for start in range(0, count, BATCH):
            index = order[start:start + BATCH]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(images[index]), labels[index])
            loss.backward()
            optimizer.step()
    return lambda: epoch(1024), lambda: epoch(len(y))


# --------------------------------------------------------------------------- children and report


def _vm_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> int:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak resident size (VmHWM) starts again from the current size
    return _vm_kib("VmRSS")


def child(framework: str, case: str, repeat: int) -> None:
    if case == "fit":
        warm, epoch = make_fit(framework)
        before = _reset_peak()
        warm()
        start = time.perf_counter()
        epoch()
        median, peak = time.perf_counter() - start, _vm_kib("VmHWM") - before
    else:
        make_step(framework, case, 2)()  # kernels compiled or loaded, libraries warm: not the step's memory
        step = make_step(framework, case)
        before = _reset_peak()  # from the first steps: what the step itself allocates
        for _ in range(3):
            step()
        peak = _vm_kib("VmHWM") - before
        median = median_time(step, repeat if case != "tiny" else max(3, repeat // 4), warmup=2)
    print(json.dumps({"median": median, "peak_mib": peak / 1024}))


def who(cases: list[str]) -> dict[str, tuple[str, dict]]:
    """The processes to run: our two CPU backends (numba where installed), PyTorch and Keras where installed."""
    names = {"numpy": ("ours", {"AUTOGRAD_CNN_BACKEND": "numpy"})}
    if importlib.util.find_spec("numba"):
        names["numba"] = ("ours", {"AUTOGRAD_CNN_BACKEND": "numba"})
    if importlib.util.find_spec("torch"):
        names["PyTorch"] = ("torch", {})
    if importlib.util.find_spec("keras") and importlib.util.find_spec("tensorflow"):
        names["Keras/TF"] = ("keras", {"KERAS_BACKEND": "tensorflow"})
    return names


def report(results: dict, details: dict, cases: list[str], names: dict) -> None:
    print("| case | framework | median | its runs | spread | vs PyTorch | vs Keras/TF | peak memory (MiB) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for case in cases:
        medians = {name: statistics.median(results[(case, name)]) for name in names if results.get((case, name))}
        unit, factor = ("s", 1.0) if case == "fit" else ("ms", 1e3)
        for name, med in medians.items():
            times = results[(case, name)]
            ratios = [f"{med / medians[other]:.2f}x" if other in medians and other != name else ""
                      for other in ("PyTorch", "Keras/TF")]
            peak = statistics.median(d["peak_mib"] for d in details[(case, name)])
            print(f"| {CASES[case]} | {name} | {med * factor:.2f} {unit} | {min(times) * factor:.2f} to "
                  f"{max(times) * factor:.2f} | {spread(times):.0%} | {ratios[0]} | {ratios[1]} | {peak:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--repeat", type=int, default=20, help="timed steps in each process")
    parser.add_argument("--frameworks", nargs="+", choices=["numpy", "numba", "PyTorch", "Keras/TF"],
                        help="run only these (default: every one installed)")
    parser.add_argument("--before", metavar="FOLDER", help="also run our backends (those chosen) of the package "
                        "copy in FOLDER (an older commit, for a before/after row), as 'numpy, before', 'numba, before'")
    parser.add_argument("--threads", type=int, help="threads for every framework (BLAS, OpenMP, PyTorch, "
                        "TensorFlow, our kernels); default: each as installed, every core")
    parser.add_argument("--quick", action="store_true", help="one process each, cnn and mlp only")
    add_solo_arguments(parser, runs=3, frameworks=FRAMEWORKS)
    args = parser.parse_args()
    if args.solo:
        child(args.solo, args.case, args.repeat)
        return
    cases, runs = (["cnn", "mlp"], 1) if args.quick else (args.cases, args.runs)
    if "fit" in cases and fashion_mnist() is None:
        print("Fashion-MNIST not found (set AUTOGRAD_CNN_DATA): the fit case is skipped")
        cases = [c for c in cases if c != "fit"]
    print(machine())
    names = {k: v for k, v in who(cases).items() if not args.frameworks or k in args.frameworks}
    if args.before:
        for backend in [k for k, (framework, _) in names.items() if framework == "ours"]:
            names[f"{backend}, before"] = ("ours", {"AUTOGRAD_CNN_BACKEND": backend, "PYTHONPATH": args.before})
    if args.threads:
        limits = {var: str(args.threads) for var in ("AUTOGRAD_CNN_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                      "MKL_NUM_THREADS")}
        names = {k: (framework, {**env, **limits}) for k, (framework, env) in names.items()}
    details: dict = {}
    results = {}
    for case in cases:  # tiny ops are ours alone
        case_names = {k: v for k, v in names.items() if v[0] in CASE_FRAMEWORKS.get(case, FRAMEWORKS)}
        results.update(solo_in_turn(__file__, [case], runs, case_names, ["--repeat", str(args.repeat)], details))
    threads = f"{args.threads} thread(s) each" if args.threads else "threads as installed"
    print(f"\n### The lectures' models: our backends, PyTorch CPU and Keras 3 on TensorFlow CPU "
          f"(float32; {threads}; {runs} processes each, taken in turn)\n")
    report(results, details, cases, names)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
