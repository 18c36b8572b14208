"""What augmenting a batch costs against the training step it feeds: the lecture CNN's step on a batch
of 128 MNIST-shaped images (float32) and each augmentation of that batch, timed in the same
process in alternating blocks (common.paired_median_times), so both see the same machine. The
figure that matters is the ratio: augmentation should cost under a tenth of the step.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/augmentation.py
    python benchmarks/augmentation.py --backend cupy

The cases: the usual PyTorch-style pipeline (RandomCrop(28, padding=4) then RandomHorizontalFlip),
RandomRotation(15) by nearest pixel (torchvision's default) and bilinearly, and Keras's
RandomTranslation(0.1, 0.1) + RandomRotation(0.05) + RandomZoom(0.1) (bilinear, reflect; the
layers run channels-last on (128, 28, 28, 1)).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
from common import machine, paired_median_times
from train_step import step_ours


def cases(backend: str, batch_size: int) -> dict[str, Callable[[], Any]]:
    import autograd_cnn as ag
    from autograd_cnn.data import transforms as T

    rng = np.random.default_rng(0)
    x = ag.tensor(rng.random((batch_size, 1, 28, 28), dtype=np.float32), backend=backend)
    pipelines = {
        "RandomCrop(28, padding=4) + RandomHorizontalFlip()":
            T.Compose([T.RandomCrop(28, padding=4), T.RandomHorizontalFlip()]),
        "RandomRotation(15), nearest": T.RandomRotation(15),
        "RandomRotation(15), bilinear": T.RandomRotation(15, interpolation="bilinear"),
    }
    found = {name: (lambda t=t: t(x, rng=rng)) for name, t in pipelines.items()}
    try:
        from autograd_cnn.keras import layers
    except ImportError:
        return found
    if hasattr(layers, "RandomZoom"):
        keras_x = ag.tensor(rng.random((batch_size, 28, 28, 1), dtype=np.float32), backend=backend)
        chain = [layers.RandomTranslation(0.1, 0.1, seed=0), layers.RandomRotation(0.05, seed=1),
                 layers.RandomZoom(0.1, seed=2)]

        def keras_chain() -> Any:
            h = keras_x
            for layer in chain:
                h = layer(h, training=True)
            return h
        found["Keras RandomTranslation + RandomRotation + RandomZoom"] = keras_chain
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["numpy", "numba", "cupy"], default="numpy")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    print(machine())
    step, sync = step_ours(args.backend, args.batch_size)
    print(f"### Augmenting a batch of {args.batch_size} against the lecture CNN's training step ({args.backend})\n")
    print("| augmentation | augmenting (ms) | training step (ms) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for name, augment in cases(args.backend, args.batch_size).items():
        ours, theirs = paired_median_times(augment, step, args.repeat, sync=sync, their_sync=sync)
        print(f"| {name} | {ours * 1e3:.2f} | {theirs * 1e3:.1f} | {ours / theirs:.1%} |")
    print("\nBoth timed in one process, in alternating blocks of calls; medians.")


if __name__ == "__main__":
    main()
