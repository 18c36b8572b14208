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
kept beside the exporter (``onnx_emitters.py``) rather than as an attribute of each class, because:

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

import os
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from .autograd import Context, enable_grad, graph_of, keep_values
from .creation import tensor
from .errors import ArgumentTypeError, AutogradError
from .nn import Module
from .onnx_emitters import EMITTERS
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
                                      "autograd_cnn/onnx_emitters.py); write the layer with exportable ops")
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
