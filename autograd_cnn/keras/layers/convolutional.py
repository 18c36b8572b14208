"""Keras's convolutions: Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D, ZeroPadding2D.

Each calls the engine's one convolution op (``F.conv2d``, ``F.conv1d``, ``F.conv_transpose2d``)
on a channels-first view of a channels-last input, and hands back a channels-last view of the
result. Both views are free: the convolution kernels read their input channels-last and write
their output channels-last (as PyTorch's channels_last memory format), so an (N, H, W, C) batch
seen as (N, C, H, W) is exactly what they take, and their (N, C, H, W) result seen as (N, H, W, C)
is a contiguous array: Flatten of it is a plain reshape.
"""
from __future__ import annotations

import math
from typing import Any

from ... import checks
from ... import functional as F
from ...errors import ArgumentError, ShapeError
from ..graph import shape_text
from .base import Layout
from .core import Activated, data_format_of

# Keras's kernel layouts against the engine's: (kh, kw, in, out) is (out, in, kh, kw) transposed.
_CONV2D = Layout.transposed((3, 2, 0, 1))
_CONV1D = Layout.transposed((2, 1, 0))


def _depthwise_layout() -> Layout:
    """Keras's (kh, kw, in, multiplier) against the engine's grouped (in * multiplier, 1, kh, kw)."""
    def to_engine(a: Any) -> Any:
        kh, kw, c, m = a.shape
        return a.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]

    def to_keras(a: Any) -> Any:  # (kh, kw, in * multiplier): get_weights reshapes it to Keras's shape
        return a[:, 0].transpose(1, 2, 0)

    return Layout(to_engine, to_keras)


class _Conv(Activated):
    """Shared by the convolutions: the arguments, the channel axis, the padding, the views."""

    rank = 2

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: Any = 1, groups: int = 1, activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        where, rank = type(self).__name__, self.rank
        self.filters = checks.integer(where, "filters", filters, 1) if filters is not None else None
        self.kernel_size = checks.ints(where, "kernel_size", kernel_size, rank, 1)
        self.strides = checks.ints(where, "strides", strides, rank, 1)
        self.dilation_rate = checks.ints(where, "dilation_rate", dilation_rate, rank, 1)
        options = ("valid", "same", "causal") if rank == 1 else ("valid", "same")
        self.padding = checks.choice(where, "padding", padding.lower() if isinstance(padding, str) else padding,
                                     options)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ArgumentError(f"{where}: strides > 1 and dilation_rate > 1 cannot be combined (as in Keras); "
                                f"got strides={strides!r}, dilation_rate={dilation_rate!r}")
        self.data_format = data_format_of(where, data_format)
        self.groups = checks.integer(where, "groups", groups, 1)
        self.use_bias = checks.flag(where, "use_bias", use_bias)
        from .. import initializers

        self.kernel_initializer = initializers.get(kernel_initializer, where)
        self.bias_initializer = initializers.get(bias_initializer, where)
        self._remember(filters=filters, kernel_size=self.kernel_size, strides=self.strides, padding=self.padding,
                       data_format=self.data_format, dilation_rate=self.dilation_rate, groups=self.groups,
                       use_bias=use_bias, kernel_initializer=initializers.serialize(self.kernel_initializer),
                       bias_initializer=initializers.serialize(self.bias_initializer))
        self._set_activation(activation)

    @property
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def _input_channels(self, input_shape: tuple) -> int:
        where, rank = type(self).__name__, self.rank
        if len(input_shape) != rank + 2 or input_shape[self._channel_axis] is None:
            raise ShapeError(f"{self!r} expects inputs of rank {rank + 2}, {self._layout('C')}, with a known "
                             f"number of channels; got {shape_text(input_shape)}")
        channels = input_shape[self._channel_axis]
        for name, n in (("input channels", channels), ("filters", self.filters)):
            if n is not None and n % self.groups:
                raise ArgumentError(f"{where}: groups={self.groups} must divide the {name} ({n})")
        self.input_spec = {"ndim": rank + 2, "axes": {self._channel_axis: channels}, "layout": self._layout(channels)}
        return channels

    def _layout(self, channels: Any) -> str:
        space = ("H", "W")[2 - self.rank:] if self.rank <= 2 else ()
        dims = ", ".join(space)
        if self.data_format == "channels_last":
            return f"(None, {dims}, {channels})"
        return f"(None, {channels}, {dims})"

    def _shape_hint(self, shape: tuple) -> str:
        spec = self.input_spec
        channels = spec["axes"][self._channel_axis] if spec else None
        if len(shape) == self.rank + 2 and self.data_format == "channels_last" and shape[1] == channels:
            return (f"; the batch looks channels-first (N, C, H, W): build the layer with "
                    f"data_format='channels_first', or transpose the batch to channels-last, "
                    f"x.transpose(0, {', '.join(str(i) for i in range(2, self.rank + 2))}, 1)")
        if len(shape) == self.rank + 1:
            return "; add the channel axis, x[..., None]" if self.data_format == "channels_last" else \
                "; add the channel axis, x[:, None]"
        return ""

    # --- the channels-first views around the engine's op ---------------------------------------------
    def _to_first(self, x: Any) -> Any:
        if self.data_format == "channels_first":
            return x
        return x.transpose(0, self.rank + 1, *range(1, self.rank + 1))

    def _to_last(self, y: Any) -> Any:
        if self.data_format == "channels_first":
            return y
        return y.transpose(0, *range(2, self.rank + 2), 1)

    def _padded(self, x: Any) -> tuple[Any, Any]:
        """x (channels first) and the padding to give the op: Keras's "same" puts an odd extra row
        at the bottom (and column at the right), which the op's symmetric padding cannot: then x is padded."""
        if self.padding == "valid":
            return x, 0
        if self.padding == "causal":  # Conv1D: all the padding on the left
            return F.pad(x, ((0, 0), (0, 0), ((self.kernel_size[0] - 1) * self.dilation_rate[0], 0))), 0
        pads = []
        for size, k, s, d in zip(x.shape[2:], self.kernel_size, self.strides, self.dilation_rate):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        if all(lo == hi for lo, hi in pads):
            return x, tuple(lo for lo, _ in pads) if self.rank == 2 else pads[0][0]
        return F.pad(x, ((0, 0), (0, 0), *pads)), 0


class Conv2D(_Conv):
    """2-D convolution (cross-correlation) of (N, H, W, C) images; Keras's kernel (kh, kw, in / groups, filters)."""

    def build(self, input_shape: tuple) -> None:
        channels = self._input_channels(input_shape)
        shape = self.kernel_size + (channels // self.groups, self.filters)
        self.kernel = self.add_weight(shape, self.kernel_initializer, name="kernel", layout=_CONV2D)
        self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias") if self.use_bias else None

    def call(self, inputs: Any) -> Any:
        x, padding = self._padded(self._to_first(inputs))
        y = F.conv2d(x, self.kernel, self.bias, self.strides, padding, self.dilation_rate, self.groups)
        return self._activate(self._to_last(y))


class Conv1D(_Conv):
    """1-D convolution of (N, steps, C) sequences; Keras's kernel (k, in / groups, filters)."""

    rank = 1

    def build(self, input_shape: tuple) -> None:
        channels = self._input_channels(input_shape)
        shape = self.kernel_size + (channels // self.groups, self.filters)
        self.kernel = self.add_weight(shape, self.kernel_initializer, name="kernel", layout=_CONV1D)
        self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias") if self.use_bias else None

    def call(self, inputs: Any) -> Any:
        x, padding = self._padded(self._to_first(inputs))
        y = F.conv1d(x, self.kernel, self.bias, self.strides[0], padding, self.dilation_rate[0], self.groups)
        return self._activate(self._to_last(y))


class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution (upsampling); Keras's kernel (kh, kw, filters, in).

    Output sizes and the padding's placement are Keras's: "valid" gives (in - 1) * s + max(k, s),
    "same" gives in * s.
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 output_padding: Any = None, data_format: str | None = None, dilation_rate: Any = 1,
                 activation: Any = None, use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, 1, activation, use_bias,
                         kernel_initializer, bias_initializer, **kwargs)
        self.output_padding = None if output_padding is None else \
            checks.ints("Conv2DTranspose", "output_padding", output_padding, 2, 0)
        self._remember(output_padding=self.output_padding)
        self._config.pop("groups")

    def build(self, input_shape: tuple) -> None:
        channels = self._input_channels(input_shape)
        self.kernel = self.add_weight(self.kernel_size + (self.filters, channels), self.kernel_initializer,
                                      name="kernel", layout=_CONV2D)
        self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias") if self.use_bias else None

    def _crops(self) -> list[tuple[int, int]]:
        """(first, last) rows to cut from each side of the op's full output ((in - 1) * s + k); negative
        to add zeros instead. Keras's placement of the padding (as its JAX backend computes it)."""
        crops = []
        for i, (k, s, d) in enumerate(zip(self.kernel_size, self.strides, self.dilation_rate)):
            k = (k - 1) * d + 1
            extra = None if self.output_padding is None else self.output_padding[i]
            if self.padding == "valid":
                left, right = k - 1, k - 1 + (max(k, s) - k if extra is None else extra)
            else:
                total = s + k - 2 if extra is None else k + k % 2 - 2 + extra
                left = min(total // 2 + total % 2, k - 1)
                right = total - left
            crops.append((k - 1 - left, k - 1 - right))
        return crops

    def call(self, inputs: Any) -> Any:
        y = F.conv_transpose2d(self._to_first(inputs), self.kernel, None, self.strides, 0, 0, 1, self.dilation_rate)
        crops = self._crops()
        if any(lo > 0 or hi > 0 for lo, hi in crops):
            y = y[(slice(None), slice(None), *(slice(max(lo, 0), y.shape[2 + i] - max(hi, 0))
                                                for i, (lo, hi) in enumerate(crops)))]
        if any(lo < 0 or hi < 0 for lo, hi in crops):
            y = F.pad(y, ((0, 0), (0, 0), *((max(-lo, 0), max(-hi, 0)) for lo, hi in crops)))
        y = self._to_last(y)
        if self.bias is not None:
            y = y + (self.bias if self.data_format == "channels_last" else self.bias.reshape(-1, 1, 1))
        return self._activate(y)


class DepthwiseConv2D(_Conv):
    """Each input channel convolved with its own ``depth_multiplier`` kernels.

    Keras's kernel is (kh, kw, in, multiplier); the engine's a grouped (in * multiplier, 1, kh, kw)."""

    def __init__(self, kernel_size: Any, strides: Any = 1, padding: str = "valid", depth_multiplier: int = 1,
                 data_format: str | None = None, dilation_rate: Any = 1, activation: Any = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros", **kwargs: Any) -> None:
        super().__init__(None, kernel_size, strides, padding, data_format, dilation_rate, 1, activation, use_bias,
                         depthwise_initializer, bias_initializer, **kwargs)
        self.depth_multiplier = checks.integer("DepthwiseConv2D", "depth_multiplier", depth_multiplier, 1)
        for key in ("filters", "groups", "kernel_initializer"):
            self._config.pop(key)
        self._remember(depth_multiplier=depth_multiplier, depthwise_initializer=depthwise_initializer)

    def build(self, input_shape: tuple) -> None:
        channels = self._input_channels(input_shape)
        self.kernel = self.add_weight(self.kernel_size + (channels, self.depth_multiplier), self.kernel_initializer,
                                      name="kernel", layout=_depthwise_layout())
        self.bias = self.add_weight((channels * self.depth_multiplier,), self.bias_initializer, name="bias") \
            if self.use_bias else None

    def call(self, inputs: Any) -> Any:
        x, padding = self._padded(self._to_first(inputs))
        y = F.conv2d(x, self.kernel, self.bias, self.strides, padding, self.dilation_rate, x.shape[1])
        return self._activate(self._to_last(y))


class SeparableConv2D(_Conv):
    """A depthwise convolution, then a 1x1 convolution to ``filters`` channels (the bias after it)."""

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: Any = 1, depth_multiplier: int = 1,
                 activation: Any = None, use_bias: bool = True, depthwise_initializer: Any = "glorot_uniform",
                 pointwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, 1, activation, use_bias,
                         depthwise_initializer, bias_initializer, **kwargs)
        from .. import initializers

        self.depth_multiplier = checks.integer("SeparableConv2D", "depth_multiplier", depth_multiplier, 1)
        self.pointwise_initializer = initializers.get(pointwise_initializer, "SeparableConv2D")
        for key in ("groups", "kernel_initializer"):
            self._config.pop(key)
        self._remember(depth_multiplier=depth_multiplier, depthwise_initializer=depthwise_initializer,
                       pointwise_initializer=pointwise_initializer)

    def build(self, input_shape: tuple) -> None:
        channels = self._input_channels(input_shape)
        m = self.depth_multiplier
        self.depthwise_kernel = self.add_weight(self.kernel_size + (channels, m), self.kernel_initializer,
                                                name="depthwise_kernel", layout=_depthwise_layout())
        self.pointwise_kernel = self.add_weight((1, 1, channels * m, self.filters), self.pointwise_initializer,
                                                name="pointwise_kernel", layout=_CONV2D)
        self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias") if self.use_bias else None

    def call(self, inputs: Any) -> Any:
        x, padding = self._padded(self._to_first(inputs))
        depthwise = F.conv2d(x, self.depthwise_kernel, None, self.strides, padding, self.dilation_rate, x.shape[1])
        y = F.conv2d(depthwise, self.pointwise_kernel, self.bias)
        return self._activate(self._to_last(y))


class ZeroPadding2D(Activated):
    """Zeros around each image: ``padding`` an int, (rows, columns), or ((top, bottom), (left, right))."""

    def __init__(self, padding: Any = (1, 1), data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if checks.is_int(padding) or (isinstance(padding, (tuple, list)) and all(checks.is_int(p) for p in padding)):
            rows, cols = checks.ints("ZeroPadding2D", "padding", padding, 2, 0)
            pads = ((rows, rows), (cols, cols))
        elif isinstance(padding, (tuple, list)) and len(padding) == 2:
            pads = tuple(checks.ints("ZeroPadding2D", "padding", p, 2, 0) for p in padding)
        else:
            raise ArgumentError(f"ZeroPadding2D: padding must be an int, (rows, columns) or "
                                f"((top, bottom), (left, right)), got {padding!r}")
        self.padding = pads
        self.data_format = data_format_of("ZeroPadding2D", data_format)
        self._remember(padding=pads, data_format=self.data_format)
        self._set_activation(None)
        self._config.pop("activation")

    def build(self, input_shape: tuple) -> None:
        self.input_spec = {"ndim": 4, "layout": "(None, H, W, C)" if self.data_format == "channels_last"
                           else "(None, C, H, W)"}

    def call(self, inputs: Any) -> Any:
        space = self.padding
        width = ((0, 0), *space, (0, 0)) if self.data_format == "channels_last" else ((0, 0), (0, 0), *space)
        return F.pad(inputs, width)


__all__ = ["Conv1D", "Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D", "ZeroPadding2D"]
