"""What the lecture CNN sees: its first-layer filters and its feature maps for one digit, as PNG.

    python examples/what_the_cnn_sees.py                                  # trains on the shipped digits
    python examples/what_the_cnn_sees.py --weights out/lecture_cnn.npz    # the weights `make demo` saved

Writes into ``out/`` (or ``--out``): ``filters.png`` (the 32 learned 3x3 kernels of the first
layer, next to the digit) and ``feature_maps_conv1.png`` ... ``feature_maps_conv3.png`` (what
each convolution layer's ReLU outputs for that digit: 32 maps of 26x26, 64 of 11x11, 128 of 3x3).
Needs matplotlib (``pip install matplotlib``).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

import autograd_cnn as ag
from autograd_cnn import data, models, nn


def pyplot() -> Any:
    """matplotlib's pyplot drawing to files; a clear message when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError as e:
        raise SystemExit("what_the_cnn_sees: drawing needs matplotlib: pip install matplotlib "
                         "(or pip install 'autograd-cnn[plot]')") from e
    matplotlib.use("Agg")  # files only: no window, works without a display
    import matplotlib.pyplot as plt

    return plt


def trained_cnn(weights: str | None, epochs: int, limit: int | None) -> nn.Sequential:
    """The lecture CNN with saved weights, or trained with the lecture recipe on the shipped digits."""
    ag.manual_seed(0)
    model = models.lecture_cnn()
    if weights:
        model.load_state_dict(ag.load(weights))
        return model
    (x_train, y_train), _ = data.load_images("sample", limit=limit)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=128)
    return model


def feature_maps(model: nn.Sequential, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The output of each convolution's ReLU for one (1, 28, 28) image in [0, 1], as (name, (C, H, W))."""
    maps = []
    h = ag.tensor(image[None], backend=ag.get_backend())
    layers = list(model.children())
    model.eval()
    with ag.no_grad():
        for before, layer in zip([None] + layers, layers):
            h = layer(h)
            if isinstance(layer, nn.ReLU) and isinstance(before, nn.Conv2d):
                maps.append((f"conv{len(maps) + 1}", h.numpy()[0]))
    return maps


def mosaic(images: np.ndarray, columns: int, gap: int = 1) -> np.ndarray:
    """Tile (K, H, W) images into one array, ``columns`` per row, with NaN (drawn blank) between them."""
    k, h, w = images.shape
    rows = math.ceil(k / columns)
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), np.nan)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = image
    return out


def picture(plt: Any, tiles: np.ndarray, title: str, cmap: str, digit: np.ndarray, **scale: Any) -> Any:
    """A figure: the digit on the left, the tiled maps or filters on the right."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1, 4]})
    left.imshow(digit, cmap="gray")
    left.set_title("input")
    right.imshow(tiles, cmap=cmap, interpolation="nearest", **scale)
    right.set_title(title)
    for ax in (left, right):
        ax.axis("off")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="a checkpoint of the lecture CNN (.npz)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs when no --weights (default 2)")
    parser.add_argument("--limit", type=int, default=None, help="train on at most N digits")
    parser.add_argument("--index", type=int, default=0, help="which test digit to look at")
    parser.add_argument("--out", default="out", help="folder for the pictures (default: out)")
    args = parser.parse_args(argv)
    plt = pyplot()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model = trained_cnn(args.weights, args.epochs, args.limit)
    _, (x_test, y_test) = data.load_images("sample")
    image, label = x_test[args.index], int(y_test[args.index])
    digit = image[0]  # (28, 28), to draw
    written = []

    # Weights: one shared colour scale centred on zero, so red is positive and blue negative everywhere.
    filters = list(model.children())[0].weight.numpy()[:, 0]  # (32, 3, 3): one input channel
    limit = float(np.abs(filters).max())
    fig = picture(plt, mosaic(filters, 8), "the 32 learned 3x3 filters of the first layer (red > 0 > blue)",
                  "bwr", digit, vmin=-limit, vmax=limit)
    written.append(out / "filters.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    for name, maps in feature_maps(model, image):
        # Each map scaled to its own maximum: a map's pattern matters here, not its size.
        peaks = maps.max(axis=(1, 2), keepdims=True)
        scaled = np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0)
        fig = picture(plt, mosaic(scaled, 16 if len(maps) > 32 else 8),
                      f"{name}: {len(maps)} feature maps of {maps.shape[1]}x{maps.shape[2]} for a {label}",
                      "viridis", digit, vmin=0, vmax=1)
        written.append(out / f"feature_maps_{name}.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    for path in written:
        print(f"saved {path}")
    return written


if __name__ == "__main__":
    main()
