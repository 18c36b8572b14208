"""Convolutions: conv1d, conv2d, conv_transpose2d, and the locally connected (unshared) layer.

conv2d, its input gradient (the transposed convolution) and its weight gradient are three
Functions whose backwards call one another, so every order of derivative is a real op and
the renderer draws the backward pass as convolutions. The weight-gradient node also makes the
bias's gradient where there is a bias (two outputs of one node): the kernel sums the output
gradient's channels on its way through, and nothing is kept between kernels. The kernels live
in the backend.
"""
from __future__ import annotations

from typing import Any

from .. import checks
from ..autograd import GRAD_OUT, Function, broadcast_to
from ..errors import ShapeError, shape_str
from ..tensor import Tensor, as_tensor
from .matmul import matmul
from .reduce import ChannelSum
from .shape import reshape, transpose

__all__ = ["conv1d", "conv2d", "conv_transpose2d", "locally_connected2d"]

# ---------------------------------------------------------------- geometry helpers


def pair(op: str, name: str, value: Any, minimum: int = 1) -> tuple:
    """An int or a pair of ints as an (h, w) pair, each at least ``minimum`` (never a bool)."""
    return checks.ints(op, name, value, 2, minimum)


def conv_padding(op: str, padding: Any, kernel_size: tuple, stride: tuple, dilation: tuple) -> tuple:
    """padding (int, pair, "valid" or "same") as ((top, bottom), (left, right))."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        if stride != (1, 1):
            raise ShapeError(f"{op}: padding='same' needs stride 1, got stride {stride}; "
                             "give the padding as numbers instead")
        # An even kernel cannot be centred: the extra row and column go bottom and right.
        totals = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    if isinstance(padding, str):
        raise ShapeError(f"{op}: padding must be an int, a pair, 'valid' or 'same'; got {padding!r}")
    ph, pw = pair(op, "padding", padding, minimum=0)
    return ((ph, ph), (pw, pw))


def conv_settings(op: str, kernel_size: tuple, stride: Any, padding: Any, dilation: Any) -> tuple:
    """stride and dilation as (h, w) pairs and padding as ((top, bottom), (left, right)), checked:
    the settings every convolution op here runs with."""
    stride, dilation = pair(op, "stride", stride), pair(op, "dilation", dilation)
    return stride, conv_padding(op, padding, kernel_size, stride, dilation), dilation


def out_size(op: str, in_shape: tuple, kernel_size: tuple, stride: tuple, padding: tuple,
             dilation: tuple) -> tuple:
    """Output height and width, O = (I + pads - span) // S + 1, span = dilation * (K - 1) + 1."""
    out = []
    for size, k, s, (lo, hi), d in zip(in_shape[2:], kernel_size, stride, padding, dilation):
        span = d * (k - 1) + 1
        if span > size + lo + hi:
            raise ShapeError(f"{op}: the kernel {shape_str(tuple(kernel_size))} (dilation {dilation}) "
                             f"spans {span}, more than the padded input {shape_str(in_shape)} with "
                             f"padding {padding} allows; use a smaller kernel or more padding")
        out.append((size + lo + hi - span) // s + 1)
    return tuple(out)


def transposed_size(op: str, in_shape: tuple, kernel_size: tuple, stride: tuple, padding: tuple,
                    dilation: tuple, output_padding: tuple) -> tuple:
    """out_size run backwards, a transposed convolution's output height and width:
    O = (I - 1) * S - pads + span + output_padding, where output_padding gives back the rows
    that out_size's floor division drops."""
    out = tuple((size - 1) * s - lo - hi + d * (k - 1) + 1 + extra
                for size, k, s, (lo, hi), d, extra in zip(in_shape[2:], kernel_size, stride, padding, dilation,
                                                           output_padding))
    if min(out) < 1:
        raise ShapeError(f"{op}: input {shape_str(in_shape)} with padding {padding} gives an empty "
                         f"output {shape_str(out)}; use less padding")
    return out


def _check_groups(op: str, groups: Any, channels: dict) -> None:
    """groups: a positive int dividing each channel count, {"input": C, "output": O}."""
    checks.integer(op, "groups", groups, 1)
    if any(n % groups for n in channels.values()):
        counts = " and ".join(f"the {name} channels ({n})" for name, n in channels.items())
        raise ShapeError(f"{op}: groups={groups} must divide {counts}")


def check_image(op: str, x: Any, ndim: int = 4, layout: str = "(N, C, H, W)") -> Tensor:
    """x as a tensor of ``ndim`` dimensions (an array becomes one; anything else is refused)."""
    x = as_tensor(op, x)
    if x.ndim != ndim:
        raise ShapeError(f"{op}: input must be {ndim}-D {layout}, got shape {shape_str(x.shape)}")
    return x


def as_height_one(op: str, x: Tensor) -> Tensor:
    """x (N, C, W) as the image (N, C, 1, W): the 1-D ops run as their 2-D ones."""
    x = check_image(op, x, 3, "(N, C, W)")
    return reshape(x, (x.shape[0], x.shape[1], 1, x.shape[2]))


def drop_height(y: Tensor) -> Tensor:
    """A height-1 image (N, C, 1, W) back to (N, C, W)."""
    return reshape(y, (y.shape[0], y.shape[1], y.shape[3]))


# ---------------------------------------------------------------- Functions


def _geometry(ctx: Any) -> dict:
    """The stride, padding, dilation and groups a conv node ran with, handed on unchanged to the
    ops of its backward: Conv2d, ConvTranspose2d and Conv2dGradWeight are three views of one
    convolution, and each one's backward is made of the other two."""
    p = ctx.params
    return dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"])


class Conv2d(Function):
    """y[n, o] = sum_c x[n, c] ⋆ w[o, c] + b[o]  (cross-correlation)"""
    rules = (f"∂L/∂x = conv_transpose2d({GRAD_OUT}, W)",
             f"∂L/∂W = correlate(x, {GRAD_OUT})",
             f"∂L/∂b = Σ {GRAD_OUT} over N, H, W (made with ∂L/∂W, in one kernel)")
    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight)
        hw = out_size("Conv2d", x.shape, weight.shape[2:], stride, padding, dilation)
        return ctx.backend.conv2d(x, weight, bias, stride, padding, dilation, groups, hw)

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        geometry = _geometry(ctx)
        needs = ctx.needs_input_grad
        gx = ConvTranspose2d.apply(gy, weight, out_hw=x.shape[2:], **geometry) if needs[0] else None
        return (gx, *_weight_and_bias_grads(x, gy, weight, needs, "gy", geometry))


class ConvTranspose2d(Function):
    """y = conv2d's adjoint in x: each x[n, c, i, j] adds x * w[c] into the output window at (i, j), + b[c]"""
    rules = (f"∂L/∂x = conv2d({GRAD_OUT}, W)",
             f"∂L/∂W = correlate({GRAD_OUT}, x)",
             f"∂L/∂b = Σ {GRAD_OUT} over N, H, W (made with ∂L/∂W, in one kernel)")
    @staticmethod
    def forward(ctx, x, weight, bias=None, *, out_hw, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight)
        in_shape = (x.shape[0], weight.shape[1] * groups) + tuple(out_hw)
        y = ctx.backend.conv2d_grad_input(x, weight, in_shape, stride, padding, dilation, groups)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)  # y is the kernel's own new array
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        geometry = _geometry(ctx)
        needs = ctx.needs_input_grad
        gx = Conv2d.apply(gy, weight, **geometry) if needs[0] else None
        return (gx, *_weight_and_bias_grads(gy, x, weight, needs, "x", geometry))


def _weight_and_bias_grads(image: Tensor, gy: Tensor, weight: Tensor, needs: tuple, bias_from: str,
                           geometry: dict) -> tuple:
    """The weight's and (where the op has one) the bias's gradients: one Conv2dGradWeight node
    with two outputs when both are wanted (the kernel sums the bias's gradient on its way), one
    output for the weight's alone, a ChannelSum for the bias's alone (a frozen weight)."""
    kernel_size = weight.shape[2:]
    if len(needs) == 2 or not needs[2]:
        gw = Conv2dGradWeight.apply(image, gy, kernel_size=kernel_size, bias_from=None, **geometry) \
            if needs[1] else None
        return (gw,) if len(needs) == 2 else (gw, None)
    if needs[1]:
        return Conv2dGradWeight.apply(image, gy, kernel_size=kernel_size, bias_from=bias_from, **geometry)
    return None, ChannelSum.apply(gy if bias_from == "gy" else image)


class Conv2dGradWeight(Function):
    """gw[o, c] = sum_n gy[n, o] ⋆ x[n, c]  (conv2d's gradient in its weight); with ``bias_from``,
    also gb[o] = Σ gy[n, o] over N, H, W (or x's sums, for a transposed convolution): two outputs"""
    rules = ("∂L/∂x = conv_transpose2d(gy, ∂L/∂gw) (+ ∂L/∂gb where gb sums x)",
             "∂L/∂gy = conv2d(x, ∂L/∂gw) (+ ∂L/∂gb where gb sums gy)")
    materialize_grads = False  # an unused output (gw or gb) costs its backward nothing

    @staticmethod
    def forward(ctx, x, gy, *, kernel_size, stride, padding, dilation, groups, bias_from):
        ctx.save_for_backward(x, gy)
        return ctx.backend.conv2d_grad_weight(x, gy, kernel_size, stride, padding, dilation, groups, bias_from)

    @staticmethod
    def backward(ctx, ggw, ggb=None):
        x, gy = ctx.saved_tensors
        geometry = _geometry(ctx)
        needs = ctx.needs_input_grad
        on_gy = ctx.params["bias_from"] == "gy"
        gx = ggy = None
        if ggw is not None:
            if needs[0]:
                gx = ConvTranspose2d.apply(gy, ggw, out_hw=x.shape[2:], **geometry)
            if needs[1]:  # the bias's own term rides along as conv2d's bias
                ggy = Conv2d.apply(x, ggw, *([ggb] if on_gy and ggb is not None else []), **geometry)
        if ggb is not None:
            spread = reshape(ggb, (1, -1, 1, 1))
            if on_gy and needs[1] and ggy is None:
                ggy = broadcast_to(spread, gy.shape)
            elif not on_gy and needs[0]:
                gx = broadcast_to(spread, x.shape) if gx is None else gx + spread
        return gx, ggy


class Unfold(Function):
    """y[n, i, j, c, ki, kj] = x[n, c, i * s + ki, j * s + kj]  (the windows, copied out)"""
    @staticmethod
    def forward(ctx, x, *, kernel_size, stride, out_hw):
        ctx.in_shape = x.shape
        windows = ctx.backend.im2col(x, kernel_size, stride, ((0, 0), (0, 0)), (1, 1), out_hw)
        return ctx.xp.ascontiguousarray(windows.transpose(0, 1, 2, 5, 3, 4))

    @staticmethod
    def backward(ctx, gy):
        return Fold.apply(gy, in_shape=ctx.in_shape, stride=ctx.params["stride"])


class Fold(Function):
    """x[n, c, i * s + ki, j * s + kj] += y[n, i, j, c, ki, kj]  (Unfold's adjoint)"""
    @staticmethod
    def forward(ctx, cols, *, in_shape, stride):
        ctx.kernel_size, ctx.out_hw = cols.shape[4:], cols.shape[1:3]
        return ctx.backend.col2im(cols.transpose(0, 1, 2, 4, 5, 3), in_shape, stride, ((0, 0), (0, 0)), (1, 1))

    @staticmethod
    def backward(ctx, g):
        return Unfold.apply(g, kernel_size=ctx.kernel_size, stride=ctx.params["stride"], out_hw=ctx.out_hw)


# ---------------------------------------------------------------- wrappers


def _conv_inputs(op: str, x: Any, weight: Any, bias: Any) -> tuple:
    """x, weight and bias (or None) as tensors, the weight and bias on x's backend and dtype."""
    x = as_tensor(op, x)
    return x, as_tensor(op, weight, x), None if bias is None else as_tensor(op, bias, x)


def _check_conv(op: str, x: Any, weight: Any, bias: Any, groups: int) -> None:
    check_image(op, x)
    if weight.ndim != 4:
        raise ShapeError(f"{op}: weight must be 4-D (out_channels, in_channels / groups, KH, KW), "
                         f"got shape {shape_str(weight.shape)}")
    c, o = x.shape[1], weight.shape[0]
    _check_groups(op, groups, {"input": c, "output": o})
    if weight.shape[1] * groups != c:
        raise ShapeError(f"{op}: input {shape_str(x.shape)} has {c} channels, but weight "
                         f"{shape_str(weight.shape)} with groups={groups} expects "
                         f"{weight.shape[1] * groups}; check in_channels")
    if bias is not None and tuple(bias.shape) != (o,):
        raise ShapeError(f"{op}: bias must have shape ({o},) for weight {shape_str(weight.shape)}, "
                         f"got {shape_str(bias.shape)}")


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1) -> Tensor:
    """2-D cross-correlation of x (N, C, H, W) with weight (O, C / groups, KH, KW), plus bias (O,).

    ``stride`` and ``dilation`` are an int or a pair; ``padding`` an int, a pair, ``"valid"``
    or ``"same"`` (output size equals the input's; an even kernel pads one more at the
    bottom and right, as PyTorch). ``groups=C`` gives a depthwise convolution.
    """
    x, weight, bias = _conv_inputs("conv2d", x, weight, bias)
    _check_conv("conv2d", x, weight, bias, groups)
    kernel = tuple(weight.shape[2:])
    stride, padding, dilation = conv_settings("conv2d", kernel, stride, padding, dilation)
    out_size("conv2d", tuple(x.shape), kernel, stride, padding, dilation)  # so a too-large kernel names conv2d
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*inputs, stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1, padding: Any = 0, dilation: int = 1,
           groups: int = 1) -> Tensor:
    """1-D cross-correlation of x (N, C, W) with weight (O, C / groups, K): conv2d on a height-1 image."""
    x, weight, bias = _conv_inputs("conv1d", x, weight, bias)
    image = as_height_one("conv1d", x)
    if weight.ndim != 3:
        raise ShapeError(f"conv1d: weight must be 3-D (out_channels, in_channels / groups, K), "
                         f"got shape {shape_str(weight.shape)}")
    stride, dilation = checks.ints("conv1d", "stride", stride, 1, 1)[0], checks.ints("conv1d", "dilation",
                                                                                      dilation, 1, 1)[0]
    if not isinstance(padding, str):
        padding = (0, checks.ints("conv1d", "padding", padding, 1, 0)[0])
    y = conv2d(image, reshape(weight, weight.shape[:2] + (1, weight.shape[2])), bias,
               stride=(1, stride), padding=padding, dilation=(1, dilation), groups=groups)
    return drop_height(y)


def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    """Transposed convolution of x (N, C_in, H, W) with weight (C_in, C_out / groups, KH, KW).

    The gradient of conv2d in its input: output size (H - 1) * stride - 2 * padding +
    dilation * (K - 1) + output_padding + 1, as PyTorch.
    """
    op = "conv_transpose2d"
    x, weight, bias = _conv_inputs(op, x, weight, bias)
    check_image(op, x)
    if weight.ndim != 4 or x.shape[1] != weight.shape[0]:
        raise ShapeError(f"{op}: weight must be (in_channels, out_channels / groups, KH, KW) with "
                         f"in_channels = {x.shape[1]} (the input's channels); got weight "
                         f"{shape_str(weight.shape)} for input {shape_str(x.shape)}")
    _check_groups(op, groups, {"input": x.shape[1]})
    kernel = tuple(weight.shape[2:])
    padding = pair(op, "padding", padding, minimum=0)  # numbers only, as PyTorch: no "same" here
    stride, padding, dilation = conv_settings(op, kernel, stride, padding, dilation)
    extra = pair(op, "output_padding", output_padding, minimum=0)
    if any(e >= s for e, s in zip(extra, stride)):
        raise ShapeError(f"{op}: output_padding {extra} must be smaller than stride {stride}")
    out_hw = transposed_size(op, tuple(x.shape), kernel, stride, padding, dilation, extra)
    c_out = weight.shape[1] * groups
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ShapeError(f"{op}: bias must have shape ({c_out},), got {shape_str(bias.shape)}")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return ConvTranspose2d.apply(*inputs, out_hw=out_hw, stride=stride, padding=padding, dilation=dilation,
                                 groups=groups)


def locally_connected2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1) -> Tensor:
    """A convolution whose weights are not shared: each output position has its own kernel.

    x (N, C, H, W); weight (OH, OW, out_channels, C, KH, KW); bias (out_channels, OH, OW);
    no padding. y[n, o, i, j] = sum x's window at (i, j) times weight[i, j, o] (+ bias[o, i, j]).
    """
    op = "locally_connected2d"
    x, weight, bias = _conv_inputs(op, x, weight, bias)
    check_image(op, x)
    if weight.ndim != 6:
        raise ShapeError(f"{op}: weight must be 6-D (OH, OW, out_channels, in_channels, KH, KW), "
                         f"got shape {shape_str(weight.shape)}")
    stride = pair(op, "stride", stride)
    oh, ow, o, c, kh, kw = weight.shape
    hw = out_size(op, tuple(x.shape), (kh, kw), stride, ((0, 0), (0, 0)), (1, 1))
    if c != x.shape[1] or hw != (oh, ow):
        raise ShapeError(f"{op}: input {shape_str(x.shape)} with kernel {(kh, kw)} and stride {stride} "
                         f"needs weight ({hw[0]}, {hw[1]}, out_channels, {x.shape[1]}, {kh}, {kw}), "
                         f"got {shape_str(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (o, oh, ow):
        raise ShapeError(f"{op}: bias must have shape ({o}, {oh}, {ow}), got {shape_str(bias.shape)}")
    n, k = x.shape[0], c * kh * kw
    patches = Unfold.apply(x, kernel_size=(kh, kw), stride=stride, out_hw=hw)     # (N, OH, OW, C, KH, KW)
    patches = transpose(reshape(patches, (n, oh * ow, k)), (1, 0, 2))             # (L, N, K)
    kernels = transpose(reshape(weight, (oh * ow, o, k)), (0, 2, 1))              # (L, K, O)
    y = reshape(transpose(matmul(patches, kernels), (1, 2, 0)), (n, o, oh, ow))   # (L, N, O) -> (N, O, OH, OW)
    return y if bias is None else y + bias
