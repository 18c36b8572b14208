"""The lectures' convolution demos, computed with autograd_cnn.

    python examples/convolution_basics.py [output_folder]     (pictures go to out/ by default)

1. 1-D cross-correlation: a ramp with the kernel (-1, 1) finds where the signal changes;
   (1, 0, 1) sums each value's two neighbours.
2. Convolution is cross-correlation with the kernel flipped; frameworks compute the latter.
3. Ready-made 3x3 kernels: box blur, edge detection, sharpening, and the vertical-edge
   kernel whose value on one 3x3 patch is -63.
4. Output sizes: O = (I - F + 2P) / S + 1 for "valid", "same" and stride 2.
5. Max pooling of the 4x4 example.
6. (a picture) the kernels applied to a real digit.
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

import autograd_cnn as ag
import autograd_cnn.functional as F

RAMP = [0, 0, 0, 0, 1, 2, 3, 4, 4, 4, 4]
SPARSE = [0, 0, 3, 0, 0, 0, 0, 0, 3, 0, 3, 0, 0, 0]

KERNELS = {
    "box blur": np.full((3, 3), 1 / 9),
    "edge": np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=float),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=float),
    "vertical edge": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float),
}
PATCH = np.array([[221, 198, 149], [205, 147, 173], [149, 170, 222]], dtype=float)
POOL_INPUT = np.array([[4, 6, 1, 1], [1, 3, 1, 3], [4, 0, 0, 8], [8, 5, 4, 0]], dtype=float)


def cross_correlate_1d(signal: list, kernel: list) -> list:
    """(signal ⋆ kernel)[i] = sum_k signal[i + k] * kernel[k], no padding: what conv1d computes."""
    x = ag.tensor(np.asarray(signal, dtype=float)[None, None])
    w = ag.tensor(np.asarray(kernel, dtype=float)[None, None])
    return F.conv1d(x, w).numpy()[0, 0].tolist()


def convolve_1d(signal: list, kernel: list) -> list:
    """(signal * kernel)[i] = sum_k signal[i + k] * kernel[K - 1 - k]: cross-correlation with the flipped kernel."""
    return cross_correlate_1d(signal, list(kernel)[::-1])


def apply_kernel(image: np.ndarray, kernel: np.ndarray, padding: str | int = 0) -> np.ndarray:
    """A 2-D grey image cross-correlated with one kernel (conv2d with one input and one output channel)."""
    x = ag.tensor(np.asarray(image, dtype=float)[None, None])
    w = ag.tensor(np.asarray(kernel, dtype=float)[None, None])
    return F.conv2d(x, w, padding=padding).numpy()[0, 0]


def output_size(size: int, kernel: int, padding: int = 0, stride: int = 1) -> int:
    """The lecture's formula O = (I - F + 2P) / S + 1 (rounded down)."""
    return (size - kernel + 2 * padding) // stride + 1


def output_size_table(size: int = 28, kernel: int = 3) -> list[tuple[str, int, tuple]]:
    """(case, size by the formula, size conv2d gives) for valid, same and stride 2."""
    x = ag.zeros(1, 1, size, size)
    w = ag.zeros(1, 1, kernel, kernel)
    cases = [("valid", output_size(size, kernel), F.conv2d(x, w, padding="valid").shape[2:]),
             ("same", output_size(size, kernel, padding=(kernel - 1) // 2), F.conv2d(x, w, padding="same").shape[2:]),
             ("stride 2", output_size(size, kernel, stride=2), F.conv2d(x, w, stride=2).shape[2:])]
    return cases


def max_pool_example() -> np.ndarray:
    """The lecture's 4x4 input max-pooled with 2x2 windows, stride 2."""
    return F.max_pool2d(ag.tensor(POOL_INPUT[None, None]), 2).numpy()[0, 0]


def sample_digit() -> np.ndarray | None:
    """One real MNIST digit (28x28, 0-1) from the sample shipped in the package, or None."""
    try:
        from autograd_cnn.data import load_images
        (x, _), _ = load_images("sample", channels_first=False, limit=1)
    except (ImportError, OSError, AttributeError):
        return None
    return x[0]


def save_kernel_pictures(digit: np.ndarray, folder: pathlib.Path) -> pathlib.Path:
    """The digit and what each classic kernel makes of it, side by side, as a PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise SystemExit(f"the picture needs matplotlib ({err}); pip install matplotlib") from None
    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(KERNELS) + 1, figsize=(3 * (len(KERNELS) + 1), 3))
    axes[0].imshow(digit, cmap="gray")
    axes[0].set_title("digit")
    for ax, (name, kernel) in zip(axes[1:], KERNELS.items()):
        ax.imshow(apply_kernel(digit, kernel, padding="same"), cmap="gray")
        ax.set_title(name)
    for ax in axes:
        ax.axis("off")
    path = folder / "kernels_on_a_digit.png"
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    folder = pathlib.Path(argv[0] if argv else "out")
    print("1. 1-D cross-correlation")
    print(f"   {RAMP} ⋆ (-1, 1) = {[int(v) for v in cross_correlate_1d(RAMP, [-1, 1])]}")
    print(f"   {SPARSE} ⋆ (1, 0, 1) = {[int(v) for v in cross_correlate_1d(SPARSE, [1, 0, 1])]}")
    print("2. convolution flips the kernel")
    print(f"   {RAMP} * (-1, 1) = {[int(v) for v in convolve_1d(RAMP, [-1, 1])]}")
    print("3. classic kernels on the patch", PATCH.astype(int).tolist())
    for name, kernel in KERNELS.items():
        print(f"   {name:>13}: {apply_kernel(PATCH, kernel)[0, 0]:.2f}")
    print("4. output sizes for a 28x28 input and a 3x3 kernel, O = (I - F + 2P) / S + 1")
    for case, formula, shape in output_size_table():
        print(f"   {case:>8}: formula {formula}, conv2d gives {shape}")
    print("5. max pooling 2x2 of", POOL_INPUT.astype(int).tolist(), "->", max_pool_example().astype(int).tolist())
    digit = sample_digit()
    if digit is None:
        print("6. no sample digit in this installation: picture skipped")
    else:
        print("6. picture saved to", save_kernel_pictures(digit, folder))


if __name__ == "__main__":
    main()
