"""Keras's image augmentation layers: ``RandomFlip``, ``RandomTranslation``, ``RandomRotation``,
``RandomZoom``, ``RandomCrop`` and ``RandomContrast``, with Keras's arguments and fill modes.

    model = keras.Sequential([keras.Input((28, 28, 1)),
                              layers.RandomTranslation(0.1, 0.1), layers.RandomRotation(0.05),
                              layers.Conv2D(32, 3, activation="relu"), ...])

They change the images only while training (``fit``, or a call with ``training=True``); in
``evaluate`` and ``predict`` they pass them through as they are (``RandomCrop`` too, as in
Keras 3). Each image draws its own parameters from the layer's generator
(``seed``, else the one ``ag.manual_seed`` seeds), on the host, a few numbers per image; the
pixels move on the images' backend through ``backends.augmentation``, the kernels
``data.transforms`` uses too. Put them at the model's input: no gradient flows through them.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ... import checks
from ...backends import augmentation as kernels
from ...errors import ArgumentError, ShapeError, shape_str
from ...tensor import Tensor
from .base import Layer

__all__ = ["RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom"]


def _factor(where: str, name: str, value: Any, low: float, high: float, symmetric: bool = True) -> tuple:
    """Keras's factor: a number f (the range (-f, f), or (f, f) where not ``symmetric``) or a pair
    (lower, upper), each within [low, high]."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(checks.is_real(v) for v in value):
            raise ArgumentError(f"{where}: {name} must be a number or a pair (lower, upper), got {value!r}")
        pair = tuple(float(v) for v in value)
    elif checks.is_real(value):
        pair = (-abs(float(value)), abs(float(value))) if symmetric else (float(value), float(value))
    else:
        raise ArgumentError(f"{where}: {name} must be a number or a pair (lower, upper), got {value!r}")
    if not all(low <= v <= high for v in pair):
        raise ArgumentError(f"{where}: {name} must lie in [{low:g}, {high:g}], got {value!r}")
    return tuple(sorted(pair))


class _RandomImageLayer(Layer):
    """What the six share: the generator, the data format, and ``call`` that augments only while
    training, on channels-last images (N, H, W, C) or one image (H, W, C)."""

    def __init__(self, seed: int | None = None, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        where = type(self).__name__
        if seed is not None:
            checks.integer(where, "seed", seed, minimum=0)
        self.seed = seed
        self.data_format = "channels_last" if data_format is None else \
            checks.choice(where, "data_format", data_format, ("channels_last", "channels_first"))
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def _generator(self) -> np.random.Generator:
        from ...random import host_rng

        return self._rng if self._rng is not None else host_rng()

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = inputs.data if isinstance(inputs, Tensor) else inputs
        if x.ndim not in (3, 4):
            raise ShapeError(f"{self!r} expects images (N, H, W, C) or one image (H, W, C), got shape "
                             f"{shape_str(x.shape)}")
        if not training:
            return inputs
        backend = inputs.backend_object if isinstance(inputs, Tensor) else None
        xp = backend.xp if backend is not None else np
        batch = x[None] if x.ndim == 3 else x
        if self.data_format == "channels_first":
            batch = batch.transpose(0, 2, 3, 1)
        kind = batch.dtype
        work = batch if kind.kind == "f" else batch.astype(xp.float32)
        out = self.augment(xp, work, self._generator())
        if self.data_format == "channels_first":
            out = out.transpose(0, 3, 1, 2)
        out = xp.ascontiguousarray(out)
        out = out[0] if x.ndim == 3 else out
        return Tensor(out, backend) if backend is not None else out

    def augment(self, xp: Any, images: Any, rng: np.random.Generator) -> Any:
        raise NotImplementedError


class RandomFlip(_RandomImageLayer):
    """Each image mirrored with probability 1/2, as ``mode`` says: "horizontal" (left-right),
    "vertical" (upside down) or "horizontal_and_vertical" (each drawn on its own)."""

    def __init__(self, mode: str = "horizontal_and_vertical", seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        self.mode = checks.choice("RandomFlip", "mode", mode, ("horizontal", "vertical", "horizontal_and_vertical"))
        self._remember(mode=mode, seed=seed)

    def augment(self, xp: Any, images: Any, rng: np.random.Generator) -> Any:
        n = len(images)
        horizontal = xp.asarray(rng.random(n) < 0.5) if "horizontal" in self.mode else None
        vertical = xp.asarray(rng.random(n) < 0.5) if "vertical" in self.mode else None
        return kernels.flip(xp, images, horizontal, vertical)


class _Resampling(_RandomImageLayer):
    """A geometric augmentation: a matrix per image, the pixels read through it."""

    def __init__(self, fill_mode: str, interpolation: str, seed: int | None, fill_value: float,
                 data_format: str | None, **kwargs: Any) -> None:
        super().__init__(seed, data_format, **kwargs)
        where = type(self).__name__
        self.fill_mode = checks.choice(where, "fill_mode", fill_mode, kernels.FILL_MODES)
        self.interpolation = checks.choice(where, "interpolation", interpolation, kernels.INTERPOLATIONS)
        self.fill_value = checks.real(where, "fill_value", fill_value)

    def augment(self, xp: Any, images: Any, rng: np.random.Generator) -> Any:
        n, h, w, _ = images.shape
        matrices = self.matrices(rng, n, h, w)
        rows, cols = kernels.affine_grid(xp, matrices, (h, w))
        return kernels.resample(xp, images, rows, cols, self.interpolation, self.fill_mode, self.fill_value,
                                margin=kernels.affine_margin(matrices, (h, w), (h, w)))

    def matrices(self, rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
        raise NotImplementedError


class RandomTranslation(_Resampling):
    """Each image moved by a fraction of its height drawn from ``height_factor`` (a number f: from
    -f to f; or a pair) and of its width from ``width_factor``; positive values move it down and right."""

    def __init__(self, height_factor: Any, width_factor: Any, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None, fill_value: float = 0.0,
                 data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = _factor("RandomTranslation", "height_factor", height_factor, -1, 1)
        self.width_factor = _factor("RandomTranslation", "width_factor", width_factor, -1, 1)
        self._remember(height_factor=height_factor, width_factor=width_factor, fill_mode=fill_mode,
                       interpolation=interpolation, seed=seed, fill_value=fill_value, data_format=data_format)

    def matrices(self, rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
        shift = np.stack([rng.uniform(*self.height_factor, n) * h, rng.uniform(*self.width_factor, n) * w], axis=1)
        return kernels.zoom_shift_matrices(np, np.ones((n, 2)), shift, (h, w))


class RandomRotation(_Resampling):
    """Each image turned about its centre by ``factor`` of a full turn (a number f: from -f to f;
    or a pair), counter-clockwise for positive values."""

    def __init__(self, factor: Any, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: int | None = None, fill_value: float = 0.0, data_format: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = _factor("RandomRotation", "factor", factor, -1, 1)
        self._remember(factor=factor, fill_mode=fill_mode, interpolation=interpolation, seed=seed,
                       fill_value=fill_value, data_format=data_format)

    def matrices(self, rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
        return kernels.rotation_matrices(np, kernels.radians(rng.uniform(*self.factor, n)), (h, w))


class RandomZoom(_Resampling):
    """Each image zoomed about its centre by 1 + a value drawn from ``height_factor`` (a number f:
    from -f to f; or a pair): positive values zoom out (the image shrinks), negative zoom in.
    ``width_factor`` None keeps the aspect ratio (one draw for both)."""

    def __init__(self, height_factor: Any, width_factor: Any = None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None, fill_value: float = 0.0,
                 data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = _factor("RandomZoom", "height_factor", height_factor, -1, 1)
        self.width_factor = None if width_factor is None else \
            _factor("RandomZoom", "width_factor", width_factor, -1, 1)
        self._remember(height_factor=height_factor, width_factor=width_factor, fill_mode=fill_mode,
                       interpolation=interpolation, seed=seed, fill_value=fill_value, data_format=data_format)

    def matrices(self, rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
        zoom_h = 1 + rng.uniform(*self.height_factor, n)
        zoom_w = zoom_h if self.width_factor is None else 1 + rng.uniform(*self.width_factor, n)
        return kernels.zoom_shift_matrices(np, np.stack([zoom_h, zoom_w], axis=1), np.zeros((n, 2)), (h, w))


class RandomCrop(_RandomImageLayer):
    """A ``height`` x ``width`` window at a random place in each image while training. In inference
    the images pass as they are, as in Keras 3: give it images of the window's size there, or
    follow it with layers that take either size."""

    def __init__(self, height: int, width: int, seed: int | None = None, data_format: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(seed, data_format, **kwargs)
        self.height = checks.integer("RandomCrop", "height", height, minimum=1)
        self.width = checks.integer("RandomCrop", "width", width, minimum=1)
        self._remember(height=height, width=width, seed=seed, data_format=data_format)

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The window's size, as Keras says (what training gives)."""
        shape = list(input_shape)
        rows, cols = (-3, -2) if self.data_format == "channels_last" else (-2, -1)
        shape[rows], shape[cols] = self.height, self.width
        return tuple(shape)

    def augment(self, xp: Any, images: Any, rng: np.random.Generator) -> Any:
        n, h, w, _ = images.shape
        if h < self.height or w < self.width:
            raise ShapeError(f"{self!r}: images of {h} x {w} are smaller than the crop {self.height} x {self.width}")
        tops, lefts = rng.integers(0, h - self.height + 1, n), rng.integers(0, w - self.width + 1, n)
        rows, cols = kernels.crop_grid(xp, tops, lefts, (self.height, self.width))
        return kernels.resample(xp, images, rows, cols, "nearest", "nearest", margin=0)


class RandomContrast(_RandomImageLayer):
    """Each image's contrast scaled by a factor drawn from [1 - lower, 1 + upper] (``factor`` a
    number f in [0, 1]: lower = upper = f; or a pair): (x - mean) * factor + mean per channel,
    clipped to ``value_range``."""

    def __init__(self, factor: Any, value_range: Any = (0, 255), seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        self.factor = _factor("RandomContrast", "factor", factor, 0, 1, symmetric=False)
        if not isinstance(value_range, (list, tuple)) or len(value_range) != 2 or \
                not all(checks.is_real(v) for v in value_range) or value_range[0] >= value_range[1]:
            raise ArgumentError(f"RandomContrast: value_range must be a pair (low, high) with low < high, "
                                f"got {value_range!r}")
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self._remember(factor=factor, value_range=value_range, seed=seed)

    def augment(self, xp: Any, images: Any, rng: np.random.Generator) -> Any:
        lower, upper = self.factor
        factors = rng.uniform(1 - lower, 1 + upper, len(images))
        return kernels.contrast(xp, images, factors, self.value_range)
