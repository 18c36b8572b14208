"""Keras's pooling: MaxPooling2D / MaxPool2D, AveragePooling2D / AvgPool2D, the global poolings.

The windows run in the engine's pooling ops on a channels-first view of the channels-last input
(free, as for the convolutions). Keras's "same" padding never pools padding: a max ignores it and
an average counts only the real values.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import checks
from ... import functional as F
from ...tensor import Tensor
from .base import Layer
from .core import data_format_of


class _Pooling2D(Layer):
    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        where = type(self).__name__
        self.pool_size = checks.ints(where, "pool_size", pool_size, 2, 1)
        self.strides = self.pool_size if strides is None else checks.ints(where, "strides", strides, 2, 1)
        self.padding = checks.choice(where, "padding", padding.lower() if isinstance(padding, str) else padding,
                                     ("valid", "same"))
        self.data_format = data_format_of(where, data_format)
        self._remember(pool_size=self.pool_size, strides=self.strides, padding=self.padding,
                       data_format=self.data_format)

    def build(self, input_shape: tuple) -> None:
        layout = "(None, H, W, C)" if self.data_format == "channels_last" else "(None, C, H, W)"
        self.input_spec = {"ndim": 4, "layout": layout}

    def _same_pads(self, x: Any) -> list[tuple[int, int]]:
        pads = []
        for size, k, s in zip(x.shape[2:], self.pool_size, self.strides):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        return pads

    def call(self, inputs: Any) -> Any:
        last = self.data_format == "channels_last"
        x = inputs.transpose(0, 3, 1, 2) if last else inputs
        y = self._pool(x)
        return y.transpose(0, 2, 3, 1) if last else y


class MaxPooling2D(_Pooling2D):
    """The largest value of each ``pool_size`` window (strides default to the pool size)."""

    def _pool(self, x: Any) -> Any:
        if self.padding == "same":
            pads = self._same_pads(x)
            if any(lo or hi for lo, hi in pads):
                x = F.pad(x, ((0, 0), (0, 0), *pads), value=-np.inf)
        return F.max_pool2d(x, self.pool_size, self.strides)


class AveragePooling2D(_Pooling2D):
    """The mean of each ``pool_size`` window ("same": of its values inside the image only)."""

    def _pool(self, x: Any) -> Any:
        if self.padding == "valid":
            return F.avg_pool2d(x, self.pool_size, self.strides)
        pads = self._same_pads(x)
        if not any(lo or hi for lo, hi in pads):
            return F.avg_pool2d(x, self.pool_size, self.strides)
        y = F.avg_pool2d(F.pad(x, ((0, 0), (0, 0), *pads)), self.pool_size, self.strides)
        # The mean over the whole window counted the padding's zeros: rescale each to the real values.
        ones = np.zeros((1, 1) + tuple(x.shape[2:]), dtype=x.dtype)
        ones = np.pad(ones + 1, ((0, 0), (0, 0), *pads))
        counts = F.avg_pool2d(Tensor(x.backend_object.asarray(ones), x.backend_object), self.pool_size, self.strides)
        return y / counts


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class _GlobalPooling2D(Layer):
    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = data_format_of(type(self).__name__, data_format)
        self.keepdims = checks.flag(type(self).__name__, "keepdims", keepdims)
        self._remember(data_format=self.data_format, keepdims=self.keepdims)

    def build(self, input_shape: tuple) -> None:
        layout = "(None, H, W, C)" if self.data_format == "channels_last" else "(None, C, H, W)"
        self.input_spec = {"ndim": 4, "layout": layout}

    def _axes(self) -> tuple:
        return (1, 2) if self.data_format == "channels_last" else (2, 3)


class GlobalAveragePooling2D(_GlobalPooling2D):
    """(N, H, W, C) -> (N, C): the mean of each channel."""

    def call(self, inputs: Any) -> Any:
        return inputs.mean(axis=self._axes(), keepdims=self.keepdims)


class GlobalMaxPooling2D(_GlobalPooling2D):
    """(N, H, W, C) -> (N, C): the largest value of each channel."""

    def call(self, inputs: Any) -> Any:
        return inputs.max(axis=self._axes(), keepdims=self.keepdims)


__all__ = ["AveragePooling2D", "AvgPool2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "MaxPool2D",
           "MaxPooling2D"]
