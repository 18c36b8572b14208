"""A model's layer diagram: one box per layer, arrows where one layer's output feeds another.

    visual.layer_graph(model, show_shapes=True)          # what keras.utils.plot_model draws

The layers and their connections are read from one forward pass of a zero batch of one (in
evaluation mode, without a graph), with a forward hook on each of the model's layers (its
direct sub-modules): a layer that takes a tensor another layer made is drawn below it. So it
works on any ``nn.Module``, a Keras functional model, a ``Sequential``, or a model of shared
layers. Shapes are shown with ``None`` for the batch axis, as Keras shows them.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from ..autograd import no_grad
from ..creation import zeros
from ..errors import ArgumentError, ShapeError, shape_str
from ..tensor import Tensor
from .dot import Picture
from .labels import MODULE_FILL
from .pictures import new_picture

INPUT_FILL = "#dbeafe"


class _Call:
    """One call of a layer: the ids of the tensors it took and made, and their shapes."""

    def __init__(self, index: int, inputs: list[Tensor], outputs: list[Tensor]) -> None:
        self.index = index
        self.inputs = [id(t) for t in inputs]
        self.outputs = [id(t) for t in outputs]
        self.in_shapes = [t.shape for t in inputs]
        self.out_shapes = [t.shape for t in outputs]
        self.dtype = str(outputs[0].dtype) if outputs else ""
        self.kept = inputs + outputs  # alive until drawn: a freed tensor's id could be another's


def _tensors(value: Any) -> list[Tensor]:
    """The tensors in a layer's argument or result: a tensor, or a (nested) list or tuple of them."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _input_shapes(model: Any, input_shape: Any) -> list[tuple]:
    """The shape of each model input without its batch axis: ``input_shape`` (one shape or a list of
    them, with or without the batch's None) or, unsaid, the model's own ``input_shape``."""
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None and getattr(model, "inputs", None):  # a Keras model's keras.Input tensors
        shape = [tuple(t.shape) for t in model.inputs]
    if shape is None:
        raise ArgumentError(f"layer_graph: {type(model).__name__} does not know its input shape; build it first "
                            "(keras.Input, input_shape= on the first layer, or one call on a batch), or pass "
                            "input_shape=(28, 28, 1)")
    shapes = list(shape) if isinstance(shape, list) else [shape]
    return [tuple(s[1:]) if len(s) and s[0] is None else tuple(s) for s in shapes]


def _shape_text(shapes: Sequence[tuple]) -> str:
    """Shapes as Keras shows them: the batch axis as None, several in a list."""
    texts = [shape_str((None,) + tuple(s[1:])) for s in shapes]
    return texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"


def _trace_calls(model: Any, layers: list[Any], shapes: list[tuple]) -> tuple[list[_Call], list[Tensor]]:
    """Every layer call of one forward pass of a zero batch of one, and the model's input tensors."""
    calls: list[_Call] = []

    def recorder(index: int) -> Any:
        def hook(module: Any, args: tuple, output: Any) -> None:
            calls.append(_Call(index, _tensors(args), _tensors(output)))
        return hook

    param = next(iter(model.parameters()), None)
    where = {} if param is None else {"dtype": param.dtype, "backend": param.backend_object}
    inputs = [zeros(*((1,) + s), **where) for s in shapes]
    handles = [layer.register_forward_hook(recorder(i)) for i, layer in enumerate(layers)]
    try:
        with model.switched_mode(training=False), no_grad():
            model(inputs[0] if len(inputs) == 1 else inputs)
    except ShapeError as e:
        raise ShapeError(f"layer_graph: a zero batch shaped {', '.join(shape_str((1,) + s) for s in shapes)} "
                         f"does not go through {type(model).__name__}: {e}") from e
    finally:
        for handle in handles:
            handle.remove()
    return calls, inputs


def _label(title: str, layer: Any, in_shapes: list, out_shapes: list, dtype: str, options: dict) -> str:
    """The box's text: "name (Type)", then what the options ask for, as Keras's plot_model."""
    lines = [title]
    activation = getattr(layer, "activation", None)
    if options["show_layer_activations"] and activation is not None:
        lines.append(f"Activation: {html.escape(getattr(activation, '__name__', str(activation)))}")
    if options["show_shapes"]:
        if in_shapes:
            lines.append(f"Input shape: {_shape_text(in_shapes)}")
        lines.append(f"Output shape: {_shape_text(out_shapes)}")
    if options["show_dtype"]:
        lines.append(f"Output dtype: {dtype}")
    if options["show_trainable"] and layer is not None:
        params = list(layer.parameters())
        lines.append("Trainable: " + ("Y" if any(p.requires_grad for p in params) else "N"))
    return "<" + "<BR/>".join(lines) + ">"


def layer_graph(model: Any, input_shape: Any = None, show_shapes: bool = False, show_layer_names: bool = True,
                show_dtype: bool = False, show_layer_activations: bool = False, show_trainable: bool = False,
                rankdir: str = "TB", dpi: int | None = None, timeout: float | None = None) -> Picture:
    """The diagram of ``model``'s layers as a Digraph: a box per layer ("name (Type)"; with
    ``show_shapes`` its input and output shapes), an arrow per tensor passed between layers.

    ``input_shape`` (without the batch axis) is needed only for a model that does not know it.
    """
    named = list(model.named_children())
    if not named:
        raise ArgumentError(f"layer_graph: {type(model).__name__} has no layers to draw")
    layers = [layer for _, layer in named]
    shapes = _input_shapes(model, input_shape)
    calls, inputs = _trace_calls(model, layers, shapes)
    options = dict(show_shapes=show_shapes, show_dtype=show_dtype, show_layer_activations=show_layer_activations,
                   show_trainable=show_trainable)
    g = new_picture("layers", rankdir, timeout=timeout)
    if dpi is not None:
        g.attr(dpi=str(dpi))

    def title(name: str, kind: str) -> str:
        return f"<B>{html.escape(name)}</B> ({kind})" if show_layer_names else f"<B>{kind}</B>"

    # Each model input comes from an InputLayer that the forward pass did not call (a functional
    # model's), taken in order; else from a box of its own.
    called = {c.index for c in calls}
    placeholders = [i for i, layer in enumerate(layers) if i not in called and type(layer).__name__ == "InputLayer"]
    made_by: dict[int, str] = {}  # a tensor's id -> the box that made it
    for k, x in enumerate(inputs):
        if k < len(placeholders):
            i = placeholders[k]
            node, name, layer = f"l{i}", getattr(layers[i], "name", None) or named[i][0], layers[i]
        else:
            node, name, layer = f"input{k}", "input" if len(inputs) == 1 else f"input_{k}", None
        g.node(node, _label(title(name, type(layer).__name__ if layer is not None else "Input"), layer, [],
                            [x.shape], str(x.dtype), options),
               shape="box", style="filled,rounded", fillcolor=INPUT_FILL)
        made_by[id(x)] = node
    first_call: dict[int, _Call] = {}
    for call in calls:
        first_call.setdefault(call.index, call)
    for i, call in sorted(first_call.items()):  # layers the forward pass never reached are left out
        name = getattr(layers[i], "name", None) or named[i][0]
        g.node(f"l{i}", _label(title(name, type(layers[i]).__name__), layers[i], call.in_shapes, call.out_shapes,
                               call.dtype, options),
               shape="box", style="filled,rounded", fillcolor=MODULE_FILL)
    edges: set[tuple[str, str]] = set()
    for call in calls:
        for tensor_id in call.inputs:
            source = made_by.get(tensor_id)
            if source is not None and (source, f"l{call.index}") not in edges:
                edges.add((source, f"l{call.index}"))
                g.edge(source, f"l{call.index}")
        for tensor_id in call.outputs:
            made_by[tensor_id] = f"l{call.index}"
    return g


__all__ = ["layer_graph"]
