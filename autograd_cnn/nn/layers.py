"""The layers: each checks its input's shape (naming itself and its place in the model), then
calls one functional op. Weights start as PyTorch's do (Kaiming-uniform, a = sqrt(5))."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import checks
from .. import functional as F
from ..backends import get_backend
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, shape_str
from . import init
from .module import Module, Parameter


def _conv_padding(where: str, padding: Any, dims: int, stride: tuple) -> None:
    """A convolution's padding: "valid", "same" (at stride 1 only), or ints >= 0."""
    if isinstance(padding, str):
        checks.choice(where, "padding", padding, ("valid", "same"))
        if padding == "same" and stride != (1,) * dims:
            raise ArgumentError(f"{where}: padding='same' needs stride 1, got stride {stride}; "
                                "give the padding as numbers instead")
    else:
        checks.ints(where, "padding", padding, dims, 0)


def _groups(where: str, groups: Any, in_channels: int, out_channels: int) -> int:
    groups = checks.integer(where, "groups", groups, 1)
    if in_channels % groups or out_channels % groups:
        raise ArgumentError(f"{where}: groups={groups} must divide in_channels={in_channels} "
                            f"and out_channels={out_channels}")
    return groups


def _empty(*shape: int) -> Parameter:
    backend = get_backend()
    return Parameter(backend.xp.zeros(shape, dtype="float32"))


class _Layer(Module):
    """A module with one input whose rank and channel (or feature) count it checks."""

    def _expect(self, x: Any, ndim: int | tuple | None, layout: str, axis: int | None = None,
                size: int | None = None) -> None:
        """x is a tensor (of rank ``ndim`` unless None) whose ``axis`` has ``size``."""
        shape = getattr(x, "shape", None)
        if shape is None:
            raise ArgumentTypeError(f"{self!r}{self.where()} expects a Tensor, got {type(x).__name__}")
        ranks = (len(shape),) if ndim is None else (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if len(shape) not in ranks or (axis is not None and shape[axis] != size):
            raise ShapeError(f"{self!r}{self.where()} expects input {layout}, got {shape_str(shape)}")


# --------------------------------------------------------------------------- dense


class Linear(_Layer):
    """y = x @ weight.T + bias; weight (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        checks.integer("Linear", "in_features", in_features, 1)
        checks.integer("Linear", "out_features", out_features, 1)
        checks.flag("Linear", "bias", bias)
        self.in_features, self.out_features = in_features, out_features
        self.weight = init.kaiming_uniform_(_empty(out_features, in_features))
        self.bias = init.bias_uniform_(_empty(out_features), in_features) if bias else None

    def forward(self, x: Any) -> Any:
        self._expect(x, range(1, 9), f"(N, {self.in_features})", -1, self.in_features)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}" + ("" if self.bias is not None else ", bias=False")


# --------------------------------------------------------------------------- convolutions


class _Conv(_Layer):
    """Shared by Conv1d and Conv2d: weight (out, in / groups, *kernel), PyTorch's initialisation."""

    dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        where, dims = type(self).__name__, self.dims
        checks.integer(where, "in_channels", in_channels, 1)
        checks.integer(where, "out_channels", out_channels, 1)
        _groups(where, groups, in_channels, out_channels)
        kernel = checks.ints(where, "kernel_size", kernel_size, dims, 1)
        _conv_padding(where, padding, dims, checks.ints(where, "stride", stride, dims, 1))
        checks.ints(where, "dilation", dilation, dims, 1)
        checks.flag(where, "bias", bias)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.weight = init.kaiming_uniform_(_empty(out_channels, in_channels // groups, *kernel))
        fan = init.fan_in(self.weight)
        self.bias = init.bias_uniform_(_empty(out_channels), fan) if bias else None

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        for name, default in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)):
            value = getattr(self, name)
            if value != default and value != (default,) * self.dims:
                text += f", {name}={value!r}"
        return text + ("" if self.bias is not None else ", bias=False")


class Conv2d(_Conv):
    """2-D convolution (cross-correlation) of (N, C, H, W) images."""

    def forward(self, x: Any) -> Any:
        self._expect(x, 4, f"(N, {self.in_channels}, H, W)", 1, self.in_channels)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_Conv):
    """1-D convolution (cross-correlation) of (N, C, W) sequences."""

    dims = 1

    def forward(self, x: Any) -> Any:
        self._expect(x, 3, f"(N, {self.in_channels}, W)", 1, self.in_channels)
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_Layer):
    """Transposed convolution (the gradient of Conv2d in its input): upsamples (N, C, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 output_padding: Any = 0, groups: int = 1, bias: bool = True, dilation: Any = 1) -> None:
        super().__init__()
        where = "ConvTranspose2d"
        checks.integer(where, "in_channels", in_channels, 1)
        checks.integer(where, "out_channels", out_channels, 1)
        _groups(where, groups, in_channels, out_channels)
        kernel = checks.ints(where, "kernel_size", kernel_size, 2, 1)
        strides = checks.ints(where, "stride", stride, 2, 1)
        checks.ints(where, "padding", padding, 2, 0)  # numbers only, as PyTorch: no "same" here
        extra = checks.ints(where, "output_padding", output_padding, 2, 0)
        if any(e >= s for e, s in zip(extra, strides)):
            raise ArgumentError(f"{where}: output_padding {output_padding!r} must be smaller than stride {stride!r}")
        checks.ints(where, "dilation", dilation, 2, 1)
        checks.flag(where, "bias", bias)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.groups, self.dilation = groups, dilation
        self.weight = init.kaiming_uniform_(_empty(in_channels, out_channels // groups, *kernel))
        fan = init.fan_in(self.weight)  # PyTorch takes it from axis 1: out_channels / groups * kernel area
        self.bias = init.bias_uniform_(_empty(out_channels), fan) if bias else None

    def forward(self, x: Any) -> Any:
        self._expect(x, 4, f"(N, {self.in_channels}, H, W)", 1, self.in_channels)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        for name, default in (("stride", 1), ("padding", 0), ("output_padding", 0), ("groups", 1),
                              ("dilation", 1)):
            if getattr(self, name) not in (default, (default, default)):
                text += f", {name}={getattr(self, name)!r}"
        return text + ("" if self.bias is not None else ", bias=False")


class LocallyConnected2d(_Layer):
    """A convolution without weight sharing: every output position has its own kernel.

    weight (OH, OW, out_channels, in_channels, KH, KW), bias (out_channels, OH, OW); the
    input's height and width (``input_size``) fix OH, OW. No padding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, input_size: Any, stride: Any = 1,
                 bias: bool = True) -> None:
        super().__init__()
        where = "LocallyConnected2d"
        checks.integer(where, "in_channels", in_channels, 1)
        checks.integer(where, "out_channels", out_channels, 1)
        (kh, kw) = checks.ints(where, "kernel_size", kernel_size, 2, 1)
        (h, w) = checks.ints(where, "input_size", input_size, 2, 1)
        (sh, sw) = checks.ints(where, "stride", stride, 2, 1)
        checks.flag(where, "bias", bias)
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        if oh < 1 or ow < 1:
            raise ArgumentError(f"{where}: kernel_size {(kh, kw)} does not fit input_size {(h, w)}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.input_size, self.stride, self.output_size = (h, w), stride, (oh, ow)
        fan = in_channels * kh * kw
        self.weight = init.kaiming_uniform_(_empty(oh, ow, out_channels, in_channels, kh, kw), fan=fan)
        self.bias = init.bias_uniform_(_empty(out_channels, oh, ow), fan) if bias else None

    def forward(self, x: Any) -> Any:
        h, w = self.input_size
        layout = f"(N, {self.in_channels}, {h}, {w})"
        self._expect(x, 4, layout, 1, self.in_channels)
        if tuple(x.shape[2:]) != self.input_size:
            raise ShapeError(f"{self!r}{self.where()} expects input {layout}, got {shape_str(x.shape)}")
        return F.locally_connected2d(x, self.weight, self.bias, self.stride)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"input_size={self.input_size}" + (f", stride={self.stride}" if self.stride != 1 else "")
                + ("" if self.bias is not None else ", bias=False"))


# --------------------------------------------------------------------------- pooling


def _check_window(where: str, dims: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any) -> None:
    """A pooling window's settings: ints >= 1 (padding >= 0, and at most half the window)."""
    kernel = checks.ints(where, "kernel_size", kernel_size, dims, 1)
    if stride is not None:
        checks.ints(where, "stride", stride, dims, 1)
    pads = checks.ints(where, "padding", padding, dims, 0)
    dilations = checks.ints(where, "dilation", dilation, dims, 1)
    # A window lying wholly in the padding would pool nothing but padding.
    if any(p > (d * (k - 1) + 1) // 2 for p, k, d in zip(pads, kernel, dilations)):
        raise ArgumentError(f"{where}: padding {padding!r} must be at most half the window "
                            f"(kernel_size {kernel_size!r}, dilation {dilation!r})")


class _Pool2d(_Layer):
    dims, layout = 2, "(N, C, H, W)"

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, **options: Any) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.options = kernel_size, stride, padding, options

    def _check(self, x: Any) -> None:
        self._expect(x, self.dims + 2, self.layout)

    def extra_repr(self) -> str:
        text = f"kernel_size={self.kernel_size}"
        if self.stride is not None and self.stride != self.kernel_size:
            text += f", stride={self.stride}"
        if self.padding != 0:
            text += f", padding={self.padding}"
        return text + "".join(f", {k}={v!r}" for k, v in self.options.items())


class MaxPool2d(_Pool2d):
    """The largest value of each window."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 ceil_mode: bool = False) -> None:
        _check_window(type(self).__name__, self.dims, kernel_size, stride, padding, dilation)
        checks.flag(type(self).__name__, "ceil_mode", ceil_mode)
        options = {k: v for k, v in (("dilation", dilation), ("ceil_mode", ceil_mode)) if v not in (1, False)}
        super().__init__(kernel_size, stride, padding, **options)
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x: Any) -> Any:
        self._check(x)
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class AvgPool2d(_Pool2d):
    """The mean of each window."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        where = type(self).__name__
        _check_window(where, self.dims, kernel_size, stride, padding, 1)
        checks.flag(where, "ceil_mode", ceil_mode)
        checks.flag(where, "count_include_pad", count_include_pad)
        options = {"ceil_mode": ceil_mode} if ceil_mode else {}
        if not count_include_pad:
            options["count_include_pad"] = False
        super().__init__(kernel_size, stride, padding, **options)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x: Any) -> Any:
        self._check(x)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


class MaxPool1d(MaxPool2d):
    """The largest value of each window of (N, C, W) sequences."""

    dims, layout = 1, "(N, C, W)"

    def forward(self, x: Any) -> Any:
        self._check(x)
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class AvgPool1d(AvgPool2d):
    """The mean of each window of (N, C, W) sequences."""

    dims, layout = 1, "(N, C, W)"

    def forward(self, x: Any) -> Any:
        self._check(x)
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


class GlobalAvgPool2d(_Layer):
    """(N, C, H, W) -> (N, C): the mean of each channel."""

    def forward(self, x: Any) -> Any:
        self._expect(x, 4, "(N, C, H, W)")
        return F.global_avg_pool2d(x)


class GlobalMaxPool2d(_Layer):
    """(N, C, H, W) -> (N, C): the largest value of each channel."""

    def forward(self, x: Any) -> Any:
        self._expect(x, 4, "(N, C, H, W)")
        return F.global_max_pool2d(x)


class AdaptiveAvgPool2d(_Layer):
    """Average-pool to a fixed (OH, OW) whatever the input's size."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        checks.ints("AdaptiveAvgPool2d", "output_size", output_size, 2, 1)
        self.output_size = output_size

    def forward(self, x: Any) -> Any:
        self._expect(x, 4, "(N, C, H, W)")
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


# --------------------------------------------------------------------------- shape and activations


class Flatten(_Layer):
    """(N, C, H, W) -> (N, C*H*W): join every axis from ``start_axis`` on."""

    def __init__(self, start_axis: int = 1) -> None:
        super().__init__()
        checks.integer("Flatten", "start_axis", start_axis)
        self.start_axis = start_axis

    def forward(self, x: Any) -> Any:
        self._expect(x, None, "a tensor")
        if x.ndim <= self.start_axis:
            raise ShapeError(f"{self!r}{self.where()} expects at least {self.start_axis + 1} dimensions, "
                             f"got {shape_str(x.shape)}")
        return F.flatten(x, self.start_axis)

    def extra_repr(self) -> str:
        return "" if self.start_axis == 1 else f"start_axis={self.start_axis}"


class Identity(Module):
    """y = x (a placeholder, e.g. for a removed layer)."""

    def forward(self, x: Any) -> Any:
        return x


class ReLU(Module):
    """y = max(x, 0)"""

    def forward(self, x: Any) -> Any:
        return F.relu(x)


class LeakyReLU(Module):
    """y = x if x > 0 else negative_slope * x"""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        checks.real("LeakyReLU", "negative_slope", negative_slope)
        self.negative_slope = negative_slope

    def forward(self, x: Any) -> Any:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """y = 1 / (1 + e^-x)"""

    def forward(self, x: Any) -> Any:
        return F.sigmoid(x)


class Tanh(Module):
    """y = tanh x"""

    def forward(self, x: Any) -> Any:
        return F.tanh(x)


class GELU(Module):
    """y = x Phi(x) (``approximate="tanh"`` for the tanh form)"""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        checks.choice("GELU", "approximate", approximate, ("none", "tanh"))
        self.approximate = approximate

    def forward(self, x: Any) -> Any:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return "" if self.approximate == "none" else f"approximate={self.approximate!r}"


class Softmax(Module):
    """Probabilities along ``axis``. As a model's last layer, compile's loss reads its input."""

    outputs_probabilities = True

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        checks.integer("Softmax", "axis", axis)
        self.axis = axis

    def forward(self, x: Any) -> Any:
        return F.softmax(x, self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


# --------------------------------------------------------------------------- regularisation


class Dropout(Module):
    """Zero each element with probability p while training (scaling the rest by 1 / (1 - p))."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        # p = 1 zeroes every activation while training: the layer would learn nothing. It is
        # mostly a keep-probability given as p (TensorFlow 1's keep_prob), so it is refused.
        checks.real("Dropout", "p (the probability of zeroing an element)", p, 0.0, 1.0, high_open=True)
        self.p = p

    def forward(self, x: Any) -> Any:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _BatchNorm(_Layer):
    ndims: tuple = (2,)
    layout = "(N, C)"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True) -> None:
        super().__init__()
        where = type(self).__name__
        checks.integer(where, "num_features", num_features, 1)
        checks.real(where, "eps", eps, 0.0, low_open=True)  # the variance of a constant channel is 0
        checks.real(where, "momentum", momentum, 0.0, 1.0)
        checks.flag(where, "affine", affine)
        self.num_features, self.eps, self.momentum, self.affine = num_features, eps, momentum, affine
        xp = get_backend().xp
        self.weight = Parameter(xp.ones(num_features, dtype="float32")) if affine else None
        self.bias = Parameter(xp.zeros(num_features, dtype="float32")) if affine else None
        from ..tensor import Tensor

        self.register_buffer("running_mean", Tensor(xp.zeros(num_features, dtype="float32")))
        self.register_buffer("running_var", Tensor(xp.ones(num_features, dtype="float32")))

    def forward(self, x: Any) -> Any:
        self._expect(x, self.ndims, self.layout.replace("C", str(self.num_features)), 1, self.num_features)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.momentum, self.eps)

    def extra_repr(self) -> str:
        text = f"{self.num_features}"
        if self.eps != 1e-5:
            text += f", eps={self.eps}"
        if self.momentum != 0.1:
            text += f", momentum={self.momentum}"
        return text + ("" if self.affine else ", affine=False")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) features or (N, C, L) sequences, per channel."""

    ndims, layout = (2, 3), "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel."""

    ndims, layout = (4,), "(N, C, H, W)"


# --------------------------------------------------------------------------- containers


class Sequential(Module):
    """Layers applied in order: ``Sequential(Conv2d(1, 32, 3), ReLU(), ...)``.

    Supports ``model[i]``, ``model[a:b]`` (a new Sequential sharing the layers), ``len``,
    iteration and ``append``.
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], dict):
            for name, layer in layers[0].items():
                self.add_module(str(name), layer)
            return
        for layer in layers:
            self.append(layer)

    def append(self, layer: Module) -> Sequential:
        if not isinstance(layer, Module):
            raise ArgumentTypeError(f"Sequential: every layer must be a Module, got {type(layer).__name__}")
        self.add_module(str(len(self._modules)), layer)
        return self

    def __getitem__(self, index: int | slice) -> Any:
        layers = list(self._modules.values())
        if isinstance(index, slice):
            part = Sequential()
            for i, layer in enumerate(layers[index]):  # shared, and still parented by this model
                part._modules[str(i)] = layer
                object.__setattr__(part, str(i), layer)
            return part
        if not -len(layers) <= index < len(layers):
            raise IndexError(f"Sequential: index {index} out of range for {len(layers)} layers")
        return layers[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def forward(self, x: Any) -> Any:
        for layer in self._modules.values():
            x = layer(x)
        return x
