"""One walk of the graph that every picture reads.

``trace(output)`` reads the graph behind ``output`` through the engine's inspection API
(``autograd.graph_of``) and gives the pictures what they draw, without changing anything:
the tensors, the op nodes (in forward order), the backward steps (in the order the engine
runs them) and which tensor feeds which op. ``record_gradients(output)`` runs a quiet
backward on the retained graph, listening with ``autograd.register_step_hook``, to learn every
gradient the real backward would send, leaving every ``.grad`` as it was.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import autograd
from ..creation import ones_like
from ..errors import ArgumentTypeError, GraphError, shape_str
from ..tensor import Tensor


@dataclass(eq=False)
class TensorNode:
    """A tensor in the picture: its DOT id, label, role and the op that made it."""

    id: str
    tensor: Any
    label: str
    role: str  # "input" (leaf, no grad), "parameter" (leaf with grad), "intermediate", "output"
    producer: OpNode | None = None


@dataclass(eq=False)
class OpNode:
    """An op node (a ``Context``) in the picture: drawn once, with each of its outputs that the
    graph holds (``outputs``; ``output`` is the first, the only one of most ops)."""

    id: str
    ctx: Any
    inputs: list[TensorNode] = field(default_factory=list)
    outputs: list[TensorNode] = field(default_factory=list)

    @property
    def output(self) -> TensorNode | None:
        return self.outputs[0] if self.outputs else None

    @property
    def name(self) -> str:
        return self.ctx.name

    @property
    def scope(self) -> str:
        return self.ctx.scope

    def arg_names(self) -> list[str]:
        """The names forward gives its tensor inputs (``a, b``; ``x, weight, bias``)."""
        return self.ctx.fn.input_names(len(self.inputs))

    def unbroadcast(self, i: int) -> tuple | None:
        """The shape of input ``i``'s gradient before the engine summed it back to the input's
        broadcast shape (a SumTo step), as the engine recorded it; None where it did not."""
        return self.ctx.unbroadcast.get(i)


class Trace:
    """The graph behind ``output``: tensors, ops in forward order, and backward steps."""

    def __init__(self, output: Any) -> None:
        if not isinstance(output, Tensor):
            raise ArgumentTypeError(f"visual: expected a Tensor to draw, got {type(output).__name__}; pass the "
                                    "tensor itself (the loss or the model's output), not its value (.item())")
        self.output_tensor = output
        self.tensors: list[TensorNode] = []
        self.ops: list[OpNode] = []
        self._by_tensor: dict[int, TensorNode] = {}
        self._by_ctx: dict[int, OpNode] = {}
        # The engine's own order: consumers before producers. Forward order is its reverse.
        graph = autograd.graph_of(output)
        self.engine_order = graph.nodes
        for ctx in reversed(self.engine_order):
            op = OpNode(f"op{len(self.ops)}", ctx)
            self.ops.append(op)
            self._by_ctx[id(ctx)] = op
            for i, t in enumerate(ctx.inputs):
                made = graph.output_of(t.grad_fn, t.output_nr) if t.grad_fn is not None else t
                op.inputs.append(self._tensor(made, op, i))
            for k, out in enumerate(graph.outputs_of(ctx)):
                if out is not None:  # an output of several that nothing in this graph used is not drawn
                    label = self._op_output_label(out, op, k if ctx.n_outputs > 1 else None)
                    op.outputs.append(self._add(out, label, "intermediate", op))
        self.output = self._by_tensor.get(id(output)) or self._add(output, _leaf_label(output, None, 0), "output")
        self.output.role = "output"
        self.steps = [self._by_ctx[id(c)] for c in self.engine_order if any(c.needs_input_grad)]
        # Each (op, input index) that sends a gradient to a tensor, by id of the tensor.
        self.uses: dict[int, list[tuple[OpNode, int]]] = {}
        for op in self.ops:
            for i, t in enumerate(op.inputs):
                if op.ctx.needs_input_grad[i]:
                    self.uses.setdefault(id(t.tensor), []).append((op, i))

    # --- building ---------------------------------------------------------
    def _tensor(self, t: Any, consumer: OpNode, index: int) -> TensorNode:
        node = self._by_tensor.get(id(t))
        if node is not None:
            return node
        role = "parameter" if t.requires_grad else "input"
        return self._add(t, _leaf_label(t, consumer, index), role)

    def _add(self, t: Any, label: str, role: str, producer: OpNode | None = None) -> TensorNode:
        node = TensorNode(f"t{len(self.tensors)}", t, label, role, producer)
        self.tensors.append(node)
        self._by_tensor[id(t)] = node
        return node

    @staticmethod
    def _op_output_label(t: Any, op: OpNode, k: int | None = None) -> str:
        if getattr(t, "name", None):
            return t.name
        what = "output" if k is None else f"output {k}"
        return f"{op.scope} {op.name} {what}" if op.scope else f"{op.name} {what}"

    # --- questions the pictures ask -----------------------------------------
    def node_of(self, t: Any) -> TensorNode | None:
        return self._by_tensor.get(id(t))

    def op_of(self, ctx: Any) -> OpNode | None:
        return self._by_ctx.get(id(ctx))

    @property
    def freed(self) -> bool:
        """True once a backward() without retain_graph has freed the saved values."""
        return any(op.ctx.freed for op in self.ops)

    @property
    def backward_ran(self) -> bool:
        """True once a backward() has gone through this graph (as far as can be seen)."""
        if any(op.ctx.freed for op in self.ops):
            return True
        return any(t.tensor.grad is not None for t in self.tensors if t.producer is None)

    def saved(self, op: OpNode) -> list[tuple[TensorNode | tuple, str]] | None:
        """What ``op``'s forward saved for backward, each with its name in the op's own words
        (``fn.saved_names``, else the input's argument name, or ``y`` for the output): tensors of
        the graph as their nodes, other arrays (a mask) as (shape, dtype); None once freed."""
        if op.ctx.saved is None:
            return None
        declared = op.ctx.fn.saved_names
        arg_names = op.arg_names()
        out: list = []
        outputs = tuple(t.tensor for t in op.outputs)
        for k, value in enumerate(op.ctx.saved_sources(outputs[0] if len(outputs) == 1 else outputs)):
            if id(value) in self._by_tensor:
                item = self._by_tensor[id(value)]
            else:
                data = getattr(value, "data", value)
                item = (tuple(getattr(data, "shape", ())), str(getattr(data, "dtype", type(value).__name__)))
            if k < len(declared):
                name = declared[k]
            elif item in op.outputs:
                name = "y" if len(op.outputs) == 1 else f"y{op.outputs.index(item)}"
            elif isinstance(item, TensorNode) and item in op.inputs:
                name = arg_names[op.inputs.index(item)]
            else:
                name = f"an array {shape_str(item[0])} {item[1]}" if isinstance(item, tuple) else item.label
            if all(item is not seen for seen, _ in out):
                out.append((item, name))
        return out


def _leaf_label(t: Any, consumer: OpNode | None, index: int) -> str:
    """The user's name, else the module path and argument (``features.0.weight``)."""
    if t.name:
        return t.name
    if consumer is None:
        return "output"
    arg = consumer.ctx.fn.input_names(index + 1)[index]
    return f"{consumer.scope}.{arg}" if consumer.scope else f"{consumer.name}.{arg}"


def trace(output: Any) -> Trace:
    """Walk the graph behind ``output`` once; nothing in it is changed."""
    return Trace(output)


# --------------------------------------------------------------------------- recording


@dataclass
class Step:
    """One backward step as the engine ran it: the gradient in and the gradients out (host arrays)."""

    op: OpNode
    grad_output: Any  # an array, or a tuple of them (None for an unused one) for several outputs
    input_grads: tuple


def record_gradients(tr: Trace) -> list[Step]:
    """Run backward on the retained graph and note every step, touching no ``.grad``.

    Raises GraphError when an earlier backward() already freed the graph.
    """
    steps: list[Step] = []

    def observe(node: Any, grad_output: Any, input_grads: tuple) -> None:
        op = tr.op_of(node)
        if op is not None:
            grad_out = tuple(None if g is None else _host(g) for g in grad_output) \
                if isinstance(grad_output, tuple) else _host(grad_output)
            steps.append(Step(op, grad_out,
                              tuple(None if g is None else _host(g) for g in input_grads)))

    with autograd.register_step_hook(observe):
        replay_backward(tr)
    return steps


def replay_backward(tr: Trace) -> None:
    """Let the engine walk the retained graph once, quietly, so that each node holds what the
    engine records during backward (its ``unbroadcast`` steps).

    The engine is asked for the gradients of no input at all, so it delivers nothing, and
    ``retain_graph=True`` keeps the saved values: the user's graph and ``.grad`` values are
    exactly as before. Raises GraphError when an earlier backward() already freed the graph.
    """
    out = tr.output_tensor
    if out.grad_fn is None:
        return
    if tr.freed:
        raise GraphError("visual: an earlier backward() freed this graph's saved values, so its "
                         "steps cannot be replayed. Draw before calling backward(), or call "
                         "backward(retain_graph=True).")
    autograd.run_backward([out], [ones_like(out)], retain_graph=True, inputs=[])


def _host(g: Any) -> np.ndarray:
    return g.numpy() if hasattr(g, "numpy") else np.asarray(g)
