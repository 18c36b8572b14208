"""Data augmentation for the PyTorch-style loop, as ``torchvision.transforms`` names it.

    from autograd_cnn.data import DataLoader, transforms
    augment = transforms.Compose([transforms.RandomCrop(28, padding=4), transforms.RandomHorizontalFlip(),
                                  transforms.Normalize((0.286,), (0.353,))])
    for xb, yb in DataLoader(x, y, batch_size=128, seed=0, transform=augment): ...

A transform takes a batch ``(N, C, H, W)`` or one image ``(C, H, W)`` (a tensor, a NumPy or a
CuPy array) and returns the same kind and shape, each image drawn on its own. The draws come
from ``rng`` (the DataLoader passes its seeded generator; else the one ``ag.manual_seed``
seeds) and the pixels are moved on the images' backend by ``backends.augmentation``, the
kernels the Keras preprocessing layers use too. Augment the training data only.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import checks
from .backends import augmentation as kernels
from .backends import backend_of
from .errors import ArgumentError, ArgumentTypeError, ShapeError, shape_str

__all__ = ["Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip", "RandomRotation", "Transform"]

_PADDING_MODES = {"constant": "constant", "edge": "nearest", "reflect": "mirror", "symmetric": "reflect"}


class Transform:
    """Base class: subclasses write ``apply(xp, images, rng)`` on channels-last images (N, H, W, C)."""

    keeps_dtype = True  # integer images come back as integers (rounded), except from Normalize

    def __call__(self, images: Any, rng: np.random.Generator | None = None) -> Any:
        from . import random
        from .tensor import Tensor

        where = type(self).__name__
        tensor = isinstance(images, Tensor)
        array = images.data if tensor else images
        if not hasattr(array, "ndim"):
            raise ArgumentTypeError(f"{where}: images must be a tensor or an array (N, C, H, W) or (C, H, W), "
                                    f"got {type(images).__name__}")
        if array.ndim not in (3, 4):
            raise ShapeError(f"{where}: images must be (N, C, H, W) or (C, H, W), got shape {shape_str(array.shape)}")
        backend = images.backend_object if tensor else backend_of(array)
        xp = backend.xp
        batch = array[None] if array.ndim == 3 else array
        kind = batch.dtype
        work = batch if kind.kind == "f" else batch.astype(xp.float32)
        out = self.apply(xp, work.transpose(0, 2, 3, 1), rng if rng is not None else random.host_rng())
        out = xp.ascontiguousarray(out.transpose(0, 3, 1, 2))
        if kind.kind != "f" and self.keeps_dtype:
            out = xp.clip(xp.rint(out), *_limits(kind)).astype(kind)
        out = out[0] if array.ndim == 3 else out
        return Tensor(out, backend) if tensor else out

    def apply(self, xp: Any, images: Any, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _limits(dtype: Any) -> tuple:
    info = np.iinfo(dtype)
    return info.min, info.max


class Compose(Transform):
    """The transforms one after another."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        if not isinstance(transforms, (list, tuple)) or not all(callable(t) for t in transforms):
            raise ArgumentTypeError(f"Compose: transforms must be a list of transforms, got {transforms!r}")
        self.transforms = list(transforms)

    def __call__(self, images: Any, rng: np.random.Generator | None = None) -> Any:
        for t in self.transforms:
            images = t(images, rng=rng) if isinstance(t, Transform) else t(images)
        return images


class RandomHorizontalFlip(Transform):
    """Each image mirrored left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = checks.real("RandomHorizontalFlip", "p", p, 0, 1)

    def apply(self, xp: Any, images: Any, rng: np.random.Generator) -> Any:
        return kernels.flip(xp, images, horizontal=xp.asarray(rng.random(len(images)) < self.p))


class RandomCrop(Transform):
    """A window of ``size`` at a random place in each image, after ``padding`` pixels on every side
    (``padding_mode``: "constant" with ``fill``, "edge", "reflect" (d c b | a b c d) or "symmetric"
    (c d | a b c d)): ``RandomCrop(28, padding=4)`` moves a 28 x 28 image by up to 4 pixels."""

    def __init__(self, size: Any, padding: Any = None, fill: float = 0.0, padding_mode: str = "constant") -> None:
        self.size = checks.ints("RandomCrop", "size", size, 2, minimum=1)
        self.padding = (0, 0) if padding is None else checks.ints("RandomCrop", "padding", padding, 2, minimum=0)
        self.fill = checks.real("RandomCrop", "fill", fill)
        self.padding_mode = checks.choice("RandomCrop", "padding_mode", padding_mode, tuple(_PADDING_MODES))

    def apply(self, xp: Any, images: Any, rng: np.random.Generator) -> Any:
        n, h, w, _ = images.shape
        (ph, pw), (sh, sw) = self.padding, self.size
        if sh > h + 2 * ph or sw > w + 2 * pw:
            raise ShapeError(f"RandomCrop: size {self.size} is larger than the padded image "
                             f"({h + 2 * ph}, {w + 2 * pw})")
        tops = rng.integers(0, h + 2 * ph - sh + 1, size=n) - ph
        lefts = rng.integers(0, w + 2 * pw - sw + 1, size=n) - pw
        rows, cols = kernels.crop_grid(xp, tops, lefts, (sh, sw))
        return kernels.resample(xp, images, rows, cols, "nearest", _PADDING_MODES[self.padding_mode], self.fill,
                                margin=max(ph, pw))


class RandomRotation(Transform):
    """Each image turned about its centre by an angle drawn from [-degrees, degrees] (or the
    range (min, max)); ``interpolation`` "nearest" or "bilinear"; corners filled with ``fill``."""

    def __init__(self, degrees: Any, interpolation: str = "nearest", fill: float = 0.0) -> None:
        if isinstance(degrees, numbers.Real) and not isinstance(degrees, bool):
            degrees = checks.real("RandomRotation", "degrees", degrees, 0)
            self.degrees = (-degrees, degrees)
        else:
            pair = tuple(degrees) if isinstance(degrees, (list, tuple)) else ()
            if len(pair) != 2 or not all(checks.is_real(d) for d in pair) or pair[0] > pair[1]:
                raise ArgumentError(f"RandomRotation: degrees must be a number >= 0 or a range (min, max), "
                                    f"got {degrees!r}")
            self.degrees = tuple(float(d) for d in pair)
        self.interpolation = checks.choice("RandomRotation", "interpolation", interpolation,
                                           kernels.INTERPOLATIONS)
        self.fill = checks.real("RandomRotation", "fill", fill)

    def apply(self, xp: Any, images: Any, rng: np.random.Generator) -> Any:
        n, h, w, _ = images.shape
        angles = np.deg2rad(rng.uniform(*self.degrees, size=n))
        matrices = kernels.rotation_matrices(np, angles, (h, w))
        rows, cols = kernels.affine_grid(xp, matrices, (h, w))
        return kernels.resample(xp, images, rows, cols, self.interpolation, "constant", self.fill,
                                margin=kernels.affine_margin(matrices, (h, w), (h, w)))


class Normalize(Transform):
    """(x - mean) / std per channel (floats, whatever the images' dtype)."""

    keeps_dtype = False

    def __init__(self, mean: Any, std: Any) -> None:
        self.mean = _per_channel("mean", mean)
        self.std = _per_channel("std", std)
        if any(s <= 0 for s in self.std):
            raise ArgumentError(f"Normalize: std must be > 0 for every channel, got {std!r}")

    def apply(self, xp: Any, images: Any, rng: np.random.Generator) -> Any:
        c = images.shape[-1]
        if len(self.mean) not in (1, c) or len(self.std) not in (1, c):
            raise ShapeError(f"Normalize: mean and std have {len(self.mean)} and {len(self.std)} values for "
                             f"images of {c} channels")
        mean = xp.asarray(self.mean, dtype=images.dtype)
        return (images - mean) / xp.asarray(self.std, dtype=images.dtype)


def _per_channel(name: str, value: Any) -> tuple:
    values = (value,) if checks.is_real(value) else value
    if not isinstance(values, (list, tuple)) or not values or not all(checks.is_real(v) for v in values) or \
            not all(math.isfinite(v) for v in values):
        raise ArgumentTypeError(f"Normalize: {name} must be a number or one finite number per channel, "
                                f"got {value!r}")
    return tuple(float(v) for v in values)
