"""ONNX export: one eval-mode forward pass of a model, written as an ONNX file.

    import autograd_cnn as ag
    ag.onnx.export(ag.models.lecture_cnn(), x[:1], "cnn.onnx")    # then onnxruntime, Netron, ...

``export`` runs the model once in evaluation mode with the graph recording, reads the nodes
through ``graph_of`` (the engine's public way to read a graph: name, fn, inputs, params,
scope), and translates each into ONNX nodes. The parameters and buffers become initializers
named as in ``state_dict`` ("3.weight", "1.running_mean"); each node is named after the layer
that made it ("3", or "3/Add" where a layer makes several), so the file reads well in Netron.
The batch axis stays free (``dynamic_batch``): reshapes that keep axis 0 write 0 there.

**The translation table.** ``EMITTERS`` maps each op's ``Function`` class to a small function
that writes its ONNX nodes through a ``GraphWriter``; an op that is not in it cannot be exported,
and the error names the op, its layer and the opset. This is a second table beside the op classes,
kept here rather than as an attribute of each class, because:

- ``ops/`` holds derivative rules and sits below ``nn``; ONNX is one file format among many, and
  its vocabulary (opsets, attribute names, Conv's pads order) would otherwise spread over nine
  files that have nothing else to say about it;
- a translation often depends on the opset and needs the writer's helpers (constants, the batch
  axis), which belong to the exporter;
- one mapping lists everything that can leave the engine, in one screen; a test checks that every
  ``Function`` is either in it or knowingly left out, so a new op cannot be forgotten silently.

``onnx`` is imported only inside ``export``: ``import autograd_cnn`` stays light.
"""
from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from .autograd import Context, enable_grad, graph_of, keep_values
from .creation import tensor
from .errors import ArgumentTypeError, AutogradError
from .nn import Module
from .ops.activation import Erf, Gelu, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .ops.conv import Conv2d, ConvTranspose2d, Unfold
from .ops.elementwise import Abs, Add, AsType, Div, Exp, Log, Maximum, Minimum, Mul, Neg, Pow, Sqrt, Sub
from .ops.matmul import Linear, MatMul
from .ops.norm import BatchNorm, Dropout
from .ops.pool import AvgPool2d, MaxPool2d
from .ops.reduce import Max, Mean, Min, Sum
from .ops.shape import Concat, GetItem, Pad, Reshape, Split, ToBackend, Transpose, Unbind
from .tensor import Tensor

__all__ = ["EMITTERS", "ExportError", "GraphWriter", "export"]

INSTALL_HINT = "pip install 'autograd-cnn[onnx]'"
MIN_OPSET = 13  # Softmax over one axis, Pad's and ReduceSum's inputs: the ONNX this module writes


class ExportError(AutogradError, ValueError):
    """A model, or one of its ops, that cannot be written as ONNX."""


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError(f"autograd_cnn.onnx.export needs the onnx package: {INSTALL_HINT}") from None
    return onnx


# --------------------------------------------------------------------------- the writer


class GraphWriter:
    """Collects the ONNX nodes and initializers of one export; what each translation writes through.

    ``op`` adds a node and returns the name of its output; ``constant`` adds an initializer.
    ``node`` is the graph node being translated: the ONNX nodes are named after its layer at the
    end (``finish``), when it is known how many nodes each layer made, and constants after its
    layer, or its op in a model's own forward ("2.running_mean", "Gelu.const").
    """

    def __init__(self, onnx: Any, opset: int, model: Module) -> None:
        self.onnx, self.opset = onnx, opset
        self.layers = dict(model.named_modules())
        self.nodes: list[Any] = []
        self.node_scopes: list[str] = []
        self.initializers: list[Any] = []
        self.taken = {"input", "output"}
        self.batched: set[str] = set()  # values that carry the input's batch axis
        self.node: Context | None = None
        # id of a tensor (or of a buffer's array) -> its name in the graph
        self.values: dict[int, str] = {}
        self.leaf_names = {id(p): name for name, p in model.named_parameters()}
        self.leaf_names.update((id(b), name) for name, b in model.named_buffers())
        self.buffer_names = {id(b.data): name for name, b in model.named_buffers()}

    def unique(self, name: str) -> str:
        """``name``, or ``name_2``, ``name_3``... when it is taken."""
        found, k = name, 1
        while found in self.taken:
            k += 1
            found = f"{name}_{k}"
        self.taken.add(found)
        return found

    @property
    def scope(self) -> str:
        """The layer of the node being translated ("" in a model's own forward)."""
        return self.node.scope if self.node is not None else ""

    @property
    def prefix(self) -> str:
        """What a constant's name starts with: the layer, else the op."""
        return self.scope or (self.node.name if self.node is not None else "const")

    def value(self, t: Any, role: str) -> str:
        """The name of a tensor the graph reads: a node's output, the input, or else (a leaf: a
        parameter, a buffer, a constant the forward made, named after its ``role``, the op's
        argument) a new initializer."""
        if id(t) not in self.values:
            name = self.leaf_names.get(id(t)) or f"{self.prefix}.{role}"
            self.values[id(t)] = self.constant(t.numpy(), name)
        return self.values[id(t)]

    def buffer(self, array: Any, what: str) -> str:
        """A buffer that an op received as an array in its params (batch norm's running statistics)."""
        if id(array) not in self.values:
            name = self.buffer_names.get(id(array)) or f"{self.prefix}.{what}"
            self.values[id(array)] = self.constant(Tensor(array).numpy(), name)
        return self.values[id(array)]

    def op(self, op_type: str, inputs: list[str], n_outputs: int = 1, **attributes: Any) -> Any:
        """Add one node of the current layer; returns its output's (provisional) name, or the list
        of them for a node of ``n_outputs`` outputs (Split)."""
        outs = [f"%{len(self.nodes)}" + (f":{k}" if k else "") for k in range(n_outputs)]  # renamed by finish()
        attributes = {k: list(v) if isinstance(v, tuple) else v for k, v in attributes.items()}
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outs, **attributes))
        self.node_scopes.append(self.scope)
        if any(name in self.batched for name in inputs):
            self.batched.update(outs)
        return outs[0] if n_outputs == 1 else outs

    def constant(self, value: Any, name: str) -> str:
        """An initializer holding ``value`` (an array), under ``name`` made unique."""
        name = self.unique(name)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def scalar(self, value: float, like: Any) -> str:
        """A 0-d constant of ``like``'s dtype (the tensor it meets), named after the layer."""
        return self.constant(np.asarray(value, dtype=like.dtype), f"{self.prefix}.const")

    def ints(self, values: Any, what: str) -> str:
        """An int64 1-D constant (a shape, axes, pads), named after the layer and ``what``."""
        return self.constant(np.asarray(list(values), dtype=np.int64), f"{self.prefix}.{what}")

    def reduce(self, op_type: str, x: str, axes: tuple, keepdims: bool) -> str:
        """ReduceMean/Max/Min/Sum over ``axes``: an attribute until opset 18, an input since
        (ReduceSum's since 13)."""
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.ints(axes, "axes")], keepdims=int(keepdims))
        return self.op(op_type, [x], axes=axes, keepdims=int(keepdims))

    def cannot(self, node: Context, why: str) -> ExportError:
        """The error for a node that has no ONNX form: the op, its layer, the opset, and why."""
        layer = self.layers.get(node.scope)
        where = (f"in layer {node.scope!r} ({type(layer).__name__})" if node.scope
                 else f"in the forward of {type(layer).__name__}" if layer is not None else "outside any layer")
        return ExportError(f"onnx.export: cannot export {node.name} {where} at opset {self.opset}: {why}")

    def finish(self, output: str) -> None:
        """Name every node after its layer ("3", or "3/Relu" where the layer made several, "3/Relu_2"
        for a repeat; the op type alone in the model's own forward) and each value after its node;
        the model's result is "output"."""
        by_scope: dict[str, list] = defaultdict(list)
        for onnx_node, scope in zip(self.nodes, self.node_scopes):
            by_scope[scope].append(onnx_node)
        renamed = {}
        for scope, onnx_nodes in by_scope.items():
            repeats: Counter = Counter()
            for onnx_node in onnx_nodes:
                kind = onnx_node.op_type
                if scope and len(onnx_nodes) == 1:
                    name = scope
                else:
                    repeats[kind] += 1
                    name = (f"{scope}/{kind}" if scope else kind) + (f"_{repeats[kind]}" if repeats[kind] > 1 else "")
                onnx_node.name = self.unique(name)
                for k, made in enumerate(onnx_node.output):  # a Split's outputs: "3/Split", "3/Split:1", ...
                    renamed[made] = "output" if made == output else onnx_node.name + (f":{k}" if k else "")
        for onnx_node in self.nodes:
            for i, name in enumerate(onnx_node.input):
                onnx_node.input[i] = renamed.get(name, name)
            for i, name in enumerate(onnx_node.output):
                onnx_node.output[i] = renamed[name]


# --------------------------------------------------------------------------- the translations
# Each takes the writer, the graph node and the names of its inputs, and returns the name of
# its output. ``node.params`` holds the op's settings as the op received them.


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


# --------------------------------------------------------------------------- export


def export(model: Module, example_input: Any, path: str | os.PathLike, opset: int = 17,
           dynamic_batch: bool = True) -> Any:
    """Write ``model`` as an ONNX file at ``path``; returns the ``onnx.ModelProto``.

    One forward pass of ``example_input`` (an array or tensor of the shape the model takes,
    batch axis first) in evaluation mode is recorded and translated; the model's mode and
    parameters are left as they were. With ``dynamic_batch`` the batch axis is named "batch"
    and any batch size runs; the other axes are fixed to the example's. The graph's input is
    "input", its output "output". Needs ``onnx`` (``pip install 'autograd-cnn[onnx]'``).
    """
    onnx = _require_onnx()
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"onnx.export: model must be an nn.Module, got {type(model).__name__}")
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ExportError(f"onnx.export: opset {opset!r} is not supported; choose one from {MIN_OPSET} to "
                          f"{newest} (the newest your onnx {onnx.__version__} knows)")
    _check_target(path)
    _check_dtype(model, example_input)
    x, out = _record(model, example_input)
    writer = GraphWriter(onnx, opset, model)
    writer.values[id(x)] = "input"
    writer.batched.add("input")
    graph = graph_of(out)
    for node in reversed(graph.nodes):
        writer.node = node
        emit = EMITTERS.get(node.fn)
        if emit is None:
            raise writer.cannot(node, "no ONNX translation is written for this op (see EMITTERS in "
                                      "autograd_cnn/onnx.py); write the layer with exportable ops")
        roles = node.fn.input_names(len(node.inputs))
        names = [writer.value(t, role) for t, role in zip(node.inputs, roles)]
        made = emit(writer, node, names)
        for out, name in zip(graph.outputs_of(node), made if node.n_outputs > 1 else [made]):
            if out is not None:  # an output of several that the model does not use is left out
                writer.values[id(out)] = name
    writer.node = None
    result = writer.value(out, "constant")
    if result not in {name for onnx_node in writer.nodes for name in onnx_node.output}:
        result = writer.op("Identity", [result])  # the input or a constant: "output" must be a node's
    writer.finish(result)
    proto = _model_proto(onnx, writer, model, x, out, opset, dynamic_batch, result in writer.batched)
    onnx.save(proto, os.fspath(path))
    return proto


def _check_target(path: Any) -> None:
    """Before any work: ``path`` names a file that can be written (not a folder, in a folder that exists)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ExportError(f"onnx.export: path must be a file name, got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ExportError(f"onnx.export: {path!r} is a folder; give the file to write, e.g. "
                          f"{os.path.join(path, 'model.onnx')!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ExportError(f"onnx.export: the folder {folder!r} of {path!r} does not exist; create it first")


def _check_dtype(model: Module, example_input: Any) -> None:
    """A float example of another precision than the model's weights would make a graph that mixes
    two float types, which ONNX refuses: say so before the work, with the cast to make."""
    weights = {p.dtype for p in model.parameters() if p.dtype.kind == "f"}
    dtype = getattr(example_input, "dtype", None)
    if dtype is None:
        try:
            dtype = np.asarray(example_input).dtype
        except (TypeError, ValueError):
            return  # not array-like: tensor() below says what is wrong with it
    if len(weights) == 1 and np.dtype(dtype).kind == "f" and np.dtype(dtype) not in weights:
        want = next(iter(weights))
        raise ExportError(f"onnx.export: the example input is {np.dtype(dtype)} but {type(model).__name__}'s "
                          f"weights are {want}; pass the example as {want} (x.astype('{want}')), or convert "
                          f"the model first (model.to('{np.dtype(dtype)}'))")


def _record(model: Module, example_input: Any) -> tuple[Tensor, Tensor]:
    """One forward pass in evaluation mode with the graph recorded (input and parameters require
    grad for it); the model's mode and its parameters' requires_grad are restored."""
    params = list(model.parameters())
    if isinstance(example_input, Tensor):
        x = example_input.detach().requires_grad_()
    else:  # an array goes where the model's weights are
        x = tensor(example_input, requires_grad=True, backend=params[0].backend if params else None)
    flags = [p.requires_grad for p in params]
    try:
        with model.switched_mode(False), enable_grad(), keep_values():  # the writer reads every tensor
            for p in params:
                p.requires_grad = True
            out = model(x)
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad = flag
    if not isinstance(out, Tensor):
        raise ExportError(f"onnx.export: the model returned {type(out).__name__}; export writes a model "
                          "that returns one tensor")
    return x, out


def _model_proto(onnx: Any, writer: GraphWriter, model: Module, x: Tensor, out: Tensor, opset: int,
                 dynamic_batch: bool, batched_output: bool) -> Any:
    """The checked ModelProto, with every intermediate shape inferred (Netron shows them)."""
    helper = onnx.helper
    batch = x.shape[0] if x.ndim else None

    def value_info(name: str, t: Tensor, batched: bool) -> Any:
        dims = list(t.shape)
        if dynamic_batch and batched and dims and dims[0] == batch:
            dims[0] = "batch"
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype)), dims)

    graph = helper.make_graph(writer.nodes, type(model).__name__, [value_info("input", x, True)],
                              [value_info("output", out, batched_output)], writer.initializers,
                              doc_string=repr(model))
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="autograd_cnn")
    proto.ir_version = helper.find_min_ir_version_for(opsets)  # readable by the oldest runtime that knows the opset
    proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    onnx.checker.check_model(proto)
    return proto
