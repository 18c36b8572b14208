"""Why the lectures recommend ReLU and batch norm, measured: the same 10-layer MLP on the shipped
digits with sigmoid activations, with ReLU, and with ReLU after batch norm.

    python examples/vanishing_gradients.py                 # out/vanishing_gradients.png
    python examples/vanishing_gradients.py --epochs 3 --out pics

``nn.callbacks.GradientStats`` records every few steps, per layer, the gradient norm, the weight
norm, the update/weight ratio and the dead ReLUs. Backpropagation multiplies each layer's
gradient by the activation's derivative, at most 1/4 for the sigmoid: ten layers shrink the first
layer's gradient a thousandfold and it barely learns (the vanishing gradient). ReLU's derivative
is 1 where it is active, and batch norm keeps every layer's inputs centred and scaled, so the
gradient reaches the first layer at full size and training goes faster.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

import autograd_cnn as ag
from autograd_cnn import data, nn, optim, visual

DEPTH, WIDTH = 10, 64


def mlp(kind: str) -> nn.Sequential:
    """DEPTH Linear layers of WIDTH units: sigmoid, relu, or batch norm then relu between them.

    The ReLU layers start from He's initialisation (Kaiming, a=0), as the lecture pairs them: the
    default (a=√5) would halve the signal's variance at every layer and vanish it in another way."""
    layers: list[nn.Module] = [nn.Flatten()]
    size = 784
    for _ in range(DEPTH - 1):
        layers.append(nn.Linear(size, WIDTH))
        if kind != "sigmoid":
            nn.init.kaiming_uniform_(layers[-1].weight, a=0.0)
        if kind == "bn":
            layers.append(nn.BatchNorm1d(WIDTH))
        layers.append(nn.Sigmoid() if kind == "sigmoid" else nn.ReLU())
        size = WIDTH
    layers.append(nn.Linear(size, 10))
    return nn.Sequential(*layers)


def train(kind: str, x: np.ndarray, y: np.ndarray, epochs: int, every: int) -> nn.History:
    ag.manual_seed(0)
    model = mlp(kind)
    model.compile(optimizer=optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=[nn.callbacks.GradientStats(every)])


def per_depth(history: nn.History, figure: str) -> list[float]:
    """The median over the recorded steps of ``figure`` for each Linear layer, first to last."""
    keys = [k for k in history.steps if k.startswith(figure + "/")]
    linear = [k for k in keys if history.steps[k] and not np.isnan(history.steps[k][0])]
    linear = [k for k in linear if history.model[int(k.split("/")[1])].__class__.__name__ == "Linear"]
    linear.sort(key=lambda k: int(k.split("/")[1]))
    return [float(np.median(history.steps[k])) for k in linear]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="default: %(default)s")
    parser.add_argument("--every", type=int, default=5, help="record every N steps (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N digits only")
    parser.add_argument("--out", default="out", help="folder for the figure (default: %(default)s)")
    args = parser.parse_args()
    (x, y), _ = data.load_images("sample", limit=args.limit)
    runs = {"sigmoid": "sigmoid", "ReLU": "relu", "ReLU + BatchNorm": "bn"}
    histories = {label: train(kind, x, y, args.epochs, args.every) for label, kind in runs.items()}

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for label, history in histories.items():
        grads = per_depth(history, "grad_norm")
        ratios = per_depth(history, "update_ratio")
        axes[0].plot(range(1, len(grads) + 1), grads, marker="o", label=label)
        axes[1].plot(range(1, len(ratios) + 1), ratios, marker="o", label=label)
        axes[2].plot(range(1, args.epochs + 1), history.history["accuracy"], marker="o", label=label)
        print(f"{label:>17}: first layer's gradient {grads[0]:.2e}, last {grads[-1]:.2e}; "
              f"accuracy after {args.epochs} epochs {history.history['accuracy'][-1]:.3f}")
    axes[0].set(title="gradient norm of each Linear layer", xlabel="layer (1 = next to the input)", yscale="log")
    axes[1].set(title="update / weight per step", xlabel="layer (1 = next to the input)", yscale="log")
    axes[1].axhline(1e-3, color="#9ca3af", linestyle="--", linewidth=1)
    axes[2].set(title="training accuracy", xlabel="epoch", ylim=(0, 1))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"A {DEPTH}-layer MLP on the shipped digits: sigmoid gradients vanish towards the input; "
                 "ReLU and batch norm keep them")
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "vanishing_gradients.png")
    fig.savefig(path, dpi=80)
    visual.plot_training(histories["sigmoid"], os.path.join(args.out, "sigmoid_training.png"),
                         title="the sigmoid MLP, every figure GradientStats records")
    print(f"figure: {path}; all the sigmoid MLP's figures: {args.out}/sigmoid_training.png")


if __name__ == "__main__":
    main()
