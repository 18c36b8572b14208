"""``model.summary()`` for Keras models: Keras 3's rows, drawn by ``nn.summary``'s table writer."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..nn.summary import CHAIN_WIDTHS, GRAPH_WIDTHS, box_table
from .graph import shape_text


def print_summary(model: Any, print_fn: Callable[[str], Any] = print) -> None:
    """One row per layer: ``name (Type)``, its output shape (None for the batch), its parameter count;
    for a graph that is not a plain chain, also the layers it is connected to; then the totals."""
    chain = _is_chain(model)
    rows = []
    for layer in model.layers:
        row = [f"{layer.name} ({type(layer).__name__})", _output_shape(model, layer),
               f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"]
        if not chain:
            row.append(_connected_to(model, layer))
        rows.append(row)
    header = ["Layer (type)", "Output Shape", "Param #"] + ([] if chain else ["Connected to"])
    print_fn(box_table(model.name, header, rows, CHAIN_WIDTHS if chain else GRAPH_WIDTHS, _totals(model)))


def _output_shape(model: Any, layer: Any) -> str:
    batch_shape = getattr(layer, "batch_shape", None)
    if batch_shape is not None:  # an InputLayer
        return shape_text(batch_shape)
    shape = model._output_shapes.get(layer.name)
    return "?" if shape is None else shape_text(shape)


def _model_nodes(model: Any, layer: Any) -> list:
    own = {id(n) for n in model._nodes}
    return [n for n in layer._inbound_nodes if id(n) in own]


def _connected_to(model: Any, layer: Any) -> str:
    links = []
    for node in _model_nodes(model, layer):
        for t in node.inputs:
            producer, made_by, index = t._keras_history
            links.append(f"{producer.name}[{producer._inbound_nodes.index(made_by)}][{index}]")
    return ", ".join(links) or "-"


def _is_chain(model: Any) -> bool:
    """A Sequential, or a functional model that is one: one input, each layer called once on one tensor."""
    if not model._nodes or len(model.inputs) != 1:
        return not model._nodes
    consumed: set[int] = set()
    for node in model._nodes:
        if len(node.inputs) != 1 or id(node.inputs[0]) in consumed or len(_model_nodes(model, node.layer)) != 1:
            return False
        consumed.add(id(node.inputs[0]))
    return True


def _totals(model: Any) -> tuple[int, int, int, int]:
    """(total, trainable, non-trainable, bytes), as Keras counts them (moving statistics are not trainable)."""
    if not model.built:
        return 0, 0, 0, 0
    weights = model.weights
    trainable = sum(w.size for w in model.trainable_weights)
    total = sum(w.size for w in weights)
    return total, trainable, total - trainable, sum(w.size * w.dtype.itemsize for w in weights)
