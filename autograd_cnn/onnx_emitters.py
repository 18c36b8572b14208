"""The ONNX translation table: ``EMITTERS`` maps each op's ``Function`` class to a small function
that writes its ONNX nodes through the exporter's ``GraphWriter`` (``onnx.py``, which says why the
table is one mapping beside the exporter rather than an attribute of each op).

Each takes the writer, the graph node and the names of its inputs, and returns the name of its
output (a list for an op with several). ``node.params`` holds the op's settings as the op
received them.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .autograd import Context
from .ops.activation import Erf, Gelu, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .ops.conv import Conv2d, ConvTranspose2d, Unfold
from .ops.elementwise import Abs, Add, AsType, Div, Exp, Log, Maximum, Minimum, Mul, Neg, Pow, Sqrt, Sub
from .ops.matmul import Linear, MatMul
from .ops.norm import BatchNorm, Dropout
from .ops.pool import AvgPool2d, MaxPool2d
from .ops.reduce import Max, Mean, Min, Sum
from .ops.shape import Concat, GetItem, Pad, Reshape, Split, ToBackend, Transpose, Unbind

# The exporter's GraphWriter (onnx.py): that module imports this one, so the name is not imported back.
GraphWriter = Any


def _pads(padding: tuple) -> tuple:
    """((top, bottom), (left, right)), as the ops keep it, in ONNX's order: begins, then ends."""
    (top, bottom), (left, right) = padding
    return (top, left, bottom, right)


def _conv_attributes(node: Context) -> dict:
    p = node.params
    return dict(strides=p["stride"], pads=_pads(p["padding"]), dilations=p["dilation"], group=p["groups"],
                kernel_shape=tuple(node.inputs[1].shape[2:]))


def _conv2d(g: GraphWriter, node: Context, x: list[str]) -> str:
    return g.op("Conv", x, **_conv_attributes(node))


def _conv_transpose2d(g: GraphWriter, node: Context, x: list[str]) -> str:
    # Written with output_padding, the rows that the forward convolution's floor division drops.
    attributes = _conv_attributes(node)
    size = [(n - 1) * s - lo - hi + d * (k - 1) + 1 for n, s, (lo, hi), d, k in zip(
        node.inputs[0].shape[2:], node.params["stride"], node.params["padding"], node.params["dilation"],
        attributes["kernel_shape"])]
    extra = [want - n for want, n in zip(node.params["out_hw"], size)]
    return g.op("ConvTranspose", x, output_padding=extra, **attributes)


def _max_pool2d(g: GraphWriter, node: Context, x: list[str]) -> str:
    # ceil_mode is already in the padding: the bottom and right pads grew to hold the last window.
    p = node.params
    (kh, kw), pads = p["kernel_size"], _pads(p["padding"])
    if any(pad >= k for pad, k in zip(pads, (kh, kw, kh, kw))):
        # onnxruntime wants each pad smaller than the kernel, which a dilated window may outgrow:
        # pad with -inf first (no window's maximum ever picks it), then pool without padding.
        top, left, bottom, right = pads
        widths = g.ints((0, 0, top, left, 0, 0, bottom, right), "pads")
        x = [g.op("Pad", [x[0], widths, g.scalar(-np.inf, node.inputs[0])], mode="constant")]
        pads = (0, 0, 0, 0)
    return g.op("MaxPool", x, kernel_shape=(kh, kw), strides=p["stride"], pads=pads, dilations=p["dilation"])


def _window_sizes(size: int, n_out: int, k: int, s: int, lo: int) -> list[int]:
    """How many elements of the image itself each window along one axis covers."""
    return [min(i * s - lo + k, size) - max(i * s - lo, 0) for i in range(n_out)]


def _avg_pool2d(g: GraphWriter, node: Context, x: list[str]) -> str:
    # The op divides each window by the count it was given (PyTorch's rule); AveragePool divides by
    # the whole window or by its part inside the image. Where neither fits (ceil_mode and padding
    # counted), the whole-window mean is rescaled by a constant (OH, OW) factor.
    p = node.params
    rows, cols = p["counts"]
    counts = np.outer(rows, cols)
    (kh, kw), (sh, sw) = p["kernel_size"], p["stride"]
    (top, _), (left, _) = p["padding"]
    h, w = node.inputs[0].shape[2:]
    inside = np.outer(_window_sizes(h, len(rows), kh, sh, top), _window_sizes(w, len(cols), kw, sw, left))
    whole, in_image = np.all(counts == kh * kw), np.array_equal(counts, inside)
    y = g.op("AveragePool", x, kernel_shape=p["kernel_size"], strides=p["stride"], pads=_pads(p["padding"]),
             count_include_pad=int(whole or not in_image))
    if not whole and not in_image:
        factor = (kh * kw / counts).astype(node.inputs[0].dtype)
        y = g.op("Mul", [y, g.constant(factor, f"{g.prefix}.window_sizes")])
    return y


def _axes(node: Context) -> tuple:
    """A reduction's axes as non-negative ints (None: all of them)."""
    ndim, axis = node.inputs[0].ndim, node.params["axis"]
    if axis is None:
        return tuple(range(ndim))
    return tuple(sorted({a % ndim for a in ((axis,) if isinstance(axis, int) else axis)}))


def _global_or_reduce(pool: str, op_type: str) -> Callable:
    """Mean or Max: over the height and width of an image it is GlobalAveragePool/GlobalMaxPool
    (then Flatten to (N, C), as global_avg_pool2d returns); over other axes a Reduce op."""
    def emit(g: GraphWriter, node: Context, x: list[str]) -> str:
        axes, keepdims = _axes(node), node.params["keepdims"]
        if node.inputs[0].ndim == 4 and axes == (2, 3):
            y = g.op(pool, x)
            return y if keepdims else g.op("Flatten", [y], axis=1)
        return g.reduce(op_type, x[0], axes, keepdims)
    return emit


def _reduce(op_type: str) -> Callable:
    def emit(g: GraphWriter, node: Context, x: list[str]) -> str:
        return g.reduce(op_type, x[0], _axes(node), node.params["keepdims"])
    return emit


def _linear(g: GraphWriter, node: Context, x: list[str]) -> str:
    """Gemm for a batch of vectors; a batch of sequences (N, L, F) as MatMul with W transposed."""
    if node.inputs[0].ndim == 2:
        return g.op("Gemm", x, transB=1)
    y = g.op("MatMul", [x[0], g.op("Transpose", [x[1]], perm=(1, 0))])
    return g.op("Add", [y, x[2]]) if len(x) == 3 else y


def _same_op(op_type: str, **fixed: Any) -> Callable:
    """An op whose ONNX twin takes the same inputs (and settings named in ``fixed``, read from params)."""
    def emit(g: GraphWriter, node: Context, x: list[str]) -> str:
        return g.op(op_type, x, **{onnx_name: node.params[ours] for onnx_name, ours in fixed.items()})
    return emit


def _binary(op_type: str) -> Callable:
    """An elementwise op of two inputs; an integer input is cast to the float one's type first,
    as the op itself does (ONNX wants one type; only Pow takes an exponent of another)."""
    def emit(g: GraphWriter, node: Context, x: list[str]) -> str:
        a, b = node.inputs
        if a.dtype != b.dtype and op_type != "Pow":
            floating = a if a.dtype.kind == "f" else b
            to = g.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(floating.dtype))
            x = [name if t is floating else g.op("Cast", [name], to=to) for name, t in zip(x, node.inputs)]
        return g.op(op_type, x)
    return emit


def _pass_through(g: GraphWriter, node: Context, x: list[str]) -> str:
    """Dropout (an inference graph keeps every value) and a move between backends: no node."""
    return x[0]


def _gelu(g: GraphWriter, node: Context, x: list[str]) -> str:
    approximate = node.params["approximate"]
    if g.opset >= 20:
        return g.op("Gelu", x, approximate=approximate)
    t = node.inputs[0]  # before opset 20, its formula in elementary ops
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
        cube = g.op("Mul", [x[0], g.op("Mul", [x[0], x[0]])])
        inner = g.op("Add", [x[0], g.op("Mul", [cube, g.scalar(0.044715, t)])])
        curve = g.op("Tanh", [g.op("Mul", [inner, g.scalar(math.sqrt(2 / math.pi), t)])])
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        curve = g.op("Erf", [g.op("Div", [x[0], g.scalar(math.sqrt(2), t)])])
    return g.op("Mul", [g.op("Mul", [x[0], g.op("Add", [curve, g.scalar(1, t)])]), g.scalar(0.5, t)])


def _batch_norm(g: GraphWriter, node: Context, x: list[str]) -> str:
    p = node.params
    if p["training"]:
        raise g.cannot(node, "it normalises with the batch's own statistics (training=True); "
                             "export uses the running statistics: call batch_norm with training=False")
    stats = [g.buffer(p[name], name) for name in ("running_mean", "running_var")]
    return g.op("BatchNormalization", [*x, *stats], epsilon=float(p["eps"]))


def _reshape(g: GraphWriter, node: Context, x: list[str]) -> str:
    before, after = node.inputs[0].shape, node.params["shape"]
    kept_batch = len(before) >= 1 and len(after) >= 1 and after[0] == before[0]
    if len(after) == 2 and kept_batch and len(before) >= 2:
        return g.op("Flatten", x, axis=1)  # flatten(x): reads as the layer it is
    # 0 copies the input's size: a batch of any size passes through.
    sizes = [0 if i == 0 and kept_batch and x[0] in g.batched else n for i, n in enumerate(after)]
    return g.op("Reshape", [x[0], g.ints(sizes, "shape")])


def _get_item(g: GraphWriter, node: Context, x: list[str]) -> str:
    """Basic slicing (``x[:, :, 2:5]``, what adaptive pooling's unequal windows use) as one Slice;
    integers, arrays, None and Ellipsis in an index have no translation here."""
    index = node.params["index"]
    index = index if isinstance(index, tuple) else (index,)
    if not all(isinstance(i, slice) and (i.step or 1) > 0 for i in index):
        raise g.cannot(node, f"only slices with a positive step translate (index {index!r})")
    cut = [(axis, i) for axis, i in enumerate(index) if i != slice(None)]
    if not cut:
        return x[0]
    end = np.iinfo(np.int64).max  # "to the end", as ONNX writes it
    return g.op("Slice", [x[0], g.ints([i.start or 0 for _, i in cut], "starts"),
                          g.ints([end if i.stop is None else i.stop for _, i in cut], "ends"),
                          g.ints([axis for axis, _ in cut], "axes"), g.ints([i.step or 1 for _, i in cut], "steps")])


def _transpose(g: GraphWriter, node: Context, x: list[str]) -> str:
    axes = node.params["axes"]
    perm = tuple(range(node.inputs[0].ndim))[::-1] if axes is None else tuple(a % len(axes) for a in axes)
    return g.op("Transpose", x, perm=perm)


def _pad(g: GraphWriter, node: Context, x: list[str]) -> str:
    widths = node.params["pad_width"]
    inputs = [x[0], g.ints([lo for lo, _ in widths] + [hi for _, hi in widths], "pads")]
    if node.params["value"] != 0:
        inputs.append(g.scalar(node.params["value"], node.inputs[0]))
    return g.op("Pad", inputs, mode="constant")


def _unfold(g: GraphWriter, node: Context, x: list[str]) -> str:
    # Each window copied out, as a grouped convolution with one-hot kernels: output channel
    # c * KH * KW + i * KW + j picks element (i, j) of channel c's window. Exact (x * 1 + 0s).
    c = node.inputs[0].shape[1]
    kh, kw = node.params["kernel_size"]
    oh, ow = node.params["out_hw"]
    picks = np.eye(kh * kw, dtype=node.inputs[0].dtype).reshape(kh * kw, 1, kh, kw)
    kernels = g.constant(np.tile(picks, (c, 1, 1, 1)), f"{g.prefix}.windows")
    cols = g.op("Conv", [x[0], kernels], kernel_shape=(kh, kw), strides=node.params["stride"], group=c)
    cols = g.op("Reshape", [cols, g.ints([0, c, kh, kw, oh, ow], "shape")])
    return g.op("Transpose", [cols], perm=(0, 4, 5, 1, 2, 3))  # (N, OH, OW, C, KH, KW)


def _split(g: GraphWriter, node: Context, x: list[str]) -> list[str]:
    bounds, axis = node.params["bounds"], node.params["axis"]
    sizes = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
    return g.op("Split", [x[0], g.ints(sizes, "split")], n_outputs=len(sizes), axis=axis)


def _unbind(g: GraphWriter, node: Context, x: list[str]) -> list[str]:
    # Pieces of one along the axis (a Split), each with that axis squeezed out.
    axis, count = node.params["axis"], node.inputs[0].shape[node.params["axis"]]
    pieces = g.op("Split", [x[0], g.ints([1] * count, "split")], n_outputs=count, axis=axis)
    pieces = [pieces] if count == 1 else pieces
    return [g.op("Squeeze", [piece, g.ints([axis], "axes")]) for piece in pieces]


def _cast(g: GraphWriter, node: Context, x: list[str]) -> str:
    return g.op("Cast", x, to=g.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(node.params["dtype"])))


# Op (its Function class) -> the function that writes it as ONNX.
EMITTERS: dict[type, Callable[[GraphWriter, Context, list[str]], Any]] = {  # a name, or a list: Split
    # convolution and pooling
    Conv2d: _conv2d,
    ConvTranspose2d: _conv_transpose2d,
    Unfold: _unfold,
    MaxPool2d: _max_pool2d,
    AvgPool2d: _avg_pool2d,
    Mean: _global_or_reduce("GlobalAveragePool", "ReduceMean"),
    Max: _global_or_reduce("GlobalMaxPool", "ReduceMax"),
    Min: _reduce("ReduceMin"),
    Sum: _reduce("ReduceSum"),
    # dense layers and activations
    Linear: _linear,
    MatMul: _same_op("MatMul"),
    ReLU: _same_op("Relu"),
    LeakyReLU: _same_op("LeakyRelu", alpha="negative_slope"),
    Sigmoid: _same_op("Sigmoid"),
    Tanh: _same_op("Tanh"),
    Gelu: _gelu,
    Erf: _same_op("Erf"),
    Softmax: _same_op("Softmax", axis="axis"),
    LogSoftmax: _same_op("LogSoftmax", axis="axis"),
    # normalisation and regularisation
    BatchNorm: _batch_norm,
    Dropout: _pass_through,
    # shapes
    Reshape: _reshape,
    Transpose: _transpose,
    Concat: _same_op("Concat", axis="axis"),
    Split: _split,
    Unbind: _unbind,
    GetItem: _get_item,
    Pad: _pad,
    ToBackend: _pass_through,
    # elementwise arithmetic
    Add: _binary("Add"),
    Sub: _binary("Sub"),
    Mul: _binary("Mul"),
    Div: _binary("Div"),
    Pow: _binary("Pow"),
    Maximum: _binary("Max"),
    Minimum: _binary("Min"),
    Neg: _same_op("Neg"),
    Exp: _same_op("Exp"),
    Log: _same_op("Log"),
    Sqrt: _same_op("Sqrt"),
    Abs: _same_op("Abs"),
    AsType: _cast,
}
