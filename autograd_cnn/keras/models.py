"""Keras's models: the functional ``Model(inputs, outputs)``, ``Sequential``, and subclassed models.

A model is a ``Layer`` (and so an ``nn.Module``) whose sub-modules are its layers, registered
under their Keras names: the graph's scopes, the parameter names ("conv2d.kernel") and the
pictures say ``conv2d``, ``max_pooling2d``, ``dense``. ``compile``, ``fit``, ``evaluate``,
``predict`` and ``train_on_batch`` hand over to the one ``Trainer`` of ``nn/training.py``
(see ``training.py`` here for Keras's arguments and results).
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

from ..errors import ArgumentError, ArgumentTypeError, CheckpointError, ShapeError
from . import graph, saving
from .graph import KerasTensor, Node, shape_text
from .layers.base import Layer
from .layers.core import Input, InputLayer
from .model_config import model_from_config
from .saving import load_weights, save_model, save_weights
from .summary import print_summary
from .training import KerasTraining

__all__ = ["Input", "Model", "Sequential", "load_model"]


class Model(KerasTraining, Layer):
    """``keras.Model(inputs, outputs, name=None)`` over any graph of layers called on ``keras.Input``s;
    or subclass it and write ``call`` (its layers set as attributes in ``__init__``)."""

    def __init__(self, inputs: Any = None, outputs: Any = None, name: str | None = None, **kwargs: Any) -> None:
        functional = inputs is not None or outputs is not None
        default = "functional" if functional else graph.snake_case(type(self).__name__)
        if type(self) is Model and not functional:
            raise ArgumentError("Model: give inputs= and outputs= (keras.Input tensors and what the layers "
                                "made of them), or subclass Model and write call()")
        super().__init__(name=name or graph.unique_name(default), **kwargs)
        object.__setattr__(self, "_nodes", [])
        object.__setattr__(self, "_model_layers", [])
        object.__setattr__(self, "_output_shapes", {})
        if functional:
            self._init_graph(inputs, outputs)

    # --- the functional graph ------------------------------------------------------------------------
    def _init_graph(self, inputs: Any, outputs: Any) -> None:
        if inputs is None or outputs is None:
            raise ArgumentError("Model: give both inputs= and outputs=")
        ins, outs = graph.flatten(inputs), graph.flatten(outputs)
        for which, tensors in (("inputs", ins), ("outputs", outs)):
            for t in tensors:
                if not isinstance(t, KerasTensor):
                    raise ArgumentTypeError(f"Model: {which} must be KerasTensors (keras.Input(...) and the results "
                                            f"of layers called on them), got {type(t).__name__}")
        for t in ins:
            if not isinstance(t._keras_history[0], InputLayer):
                raise ArgumentError(f"Model: every input must come from keras.Input; {t.name!r} was made by "
                                    f"{t._keras_history[0]!r}")
        nodes, layers = _map_graph(ins, outs)
        object.__setattr__(self, "_inputs_struct", inputs)
        object.__setattr__(self, "_outputs_struct", outputs)
        object.__setattr__(self, "inputs", ins)
        object.__setattr__(self, "outputs", outs)
        object.__setattr__(self, "_nodes", [n for n in nodes if n.inputs])  # what forward runs, in order
        self._register(layers)
        for node in nodes:
            self._output_shapes.setdefault(node.layer.name, _shapes(node.outputs))
        object.__setattr__(self, "built", True)

    def _register(self, layers: list) -> None:
        seen: dict[str, Any] = {}
        for layer in layers:
            if layer.name in seen and seen[layer.name] is not layer:
                raise ArgumentError(f"Model: two layers are named {layer.name!r}; every layer in a model needs "
                                    "its own name")
            seen[layer.name] = layer
        for layer in layers:
            self.add_module(layer.name, layer)
        object.__setattr__(self, "_model_layers", layers)

    @property
    def input(self) -> Any:
        """The model's keras.Input(s), as given to ``Model(inputs=...)``."""
        return self._inputs_struct if self._nodes else Layer.input.fget(self)

    @property
    def output(self) -> Any:
        return self._outputs_struct if self._nodes else Layer.output.fget(self)

    @property
    def input_names(self) -> list[str]:
        """The names of the model's inputs (``keras.Input(name=...)``), in order: the keys of a dict
        that ``fit``, ``evaluate`` and ``predict`` take as x for a model of several inputs."""
        return [t.name for t in self.inputs]

    def _given(self, inputs: Any) -> list:
        """The values given for the model's inputs, in the inputs' order: a dict by input name, or
        the leaves of a list or tuple (or the one value) in order."""
        if isinstance(inputs, dict) and set(inputs) == set(self.input_names):
            return [inputs[name] for name in self.input_names]
        return graph.flatten(inputs) if isinstance(self._inputs_struct, (list, tuple, dict)) else [inputs]

    @property
    def layers(self) -> list:
        """The layers in Keras's order (a functional model's InputLayers first)."""
        if self._model_layers or self._nodes:
            return list(self._model_layers)
        return [m for m in self.children() if isinstance(m, Layer)]  # a subclassed model's

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """The layer called ``name`` (or at ``index`` in ``layers``)."""
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ArgumentError(f"{self.name}.get_layer: index {index} is out of range for {len(layers)} layers")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ArgumentError(f"{self.name}.get_layer: no layer named {name!r}; the layers are "
                            f"{', '.join(layer.name for layer in layers)}")

    # --- running it ----------------------------------------------------------------------------------
    def forward(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if training is None:
            return super().forward(inputs, **kwargs)
        with self.switched_mode(bool(training)):  # model(x, training=True): every layer in that mode
            return super().forward(inputs, **kwargs)

    def _build_for(self, input_shape: Any) -> None:
        if not self._nodes:
            super()._build_for(input_shape)

    def call(self, inputs: Any) -> Any:
        if not self._nodes:
            raise NotImplementedError(f"{type(self).__name__}: a subclassed Model writes call(self, inputs)")
        values: dict[int, Any] = {}
        given = self._given(inputs)
        if len(given) != len(self.inputs):
            raise ArgumentError(f"{self!r} takes {len(self.inputs)} inputs "
                                f"({', '.join(t.name for t in self.inputs)}), got {len(given)}")
        for t, x in zip(self.inputs, given):
            values[id(t)] = x
        for node in self._nodes:
            out = node.layer(node.arguments(lambda t: values[id(t)]), **node.kwargs)
            for t, y in zip(node.outputs, out if len(node.outputs) > 1 else [out]):
                values[id(t)] = y
        results = [values[id(t)] for t in self.outputs]
        if isinstance(self._outputs_struct, (list, tuple)):
            return results
        return results[0]

    def _check_input(self, inputs: Any) -> None:
        if not self._nodes:
            return
        for t, x in zip(self.inputs, self._given(inputs)):
            _check_against_input(self, t, x)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self._nodes and graph.flatten(input_shape)[1:] == graph.flatten([t.shape for t in self.inputs])[1:]:
            out = [t.shape for t in self.outputs]
            return out if isinstance(self._outputs_struct, (list, tuple)) else out[0]
        return super().compute_output_shape(input_shape)

    # --- weights -------------------------------------------------------------------------------------
    def _weight_layers(self) -> list:
        return [layer for layer in self.layers if isinstance(layer, Layer)]

    @property
    def weights(self) -> list:
        return _unique([w for layer in self._weight_layers() for w in layer.weights])

    @property
    def trainable_weights(self) -> list:
        if not self.trainable:
            return []
        return _unique([w for layer in self._weight_layers() for w in layer.trainable_weights])

    @property
    def non_trainable_weights(self) -> list:
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    def get_weights(self) -> list:
        """Every layer's weights in Keras's layouts, layer by layer in ``layers`` order."""
        return [w for layer in self._weight_layers() for w in layer.get_weights()]

    def set_weights(self, weights: list) -> None:
        """The arrays ``get_weights`` (here or in Keras) gives, back in: all checked before any is copied."""
        weights = list(weights)
        counts = [len(layer._ordered_weights()) for layer in self._weight_layers()]
        if sum(counts) != len(weights):
            raise ArgumentError(f"{self.name}.set_weights: the model has {sum(counts)} weight arrays, got "
                                f"{len(weights)}")
        parts, start = [], 0
        for layer, n in zip(self._weight_layers(), counts):
            parts.append((layer, weights[start:start + n]))
            start += n
        for layer, part in parts:
            for w, value in zip(layer._ordered_weights(), part):
                if tuple(getattr(value, "shape", ())) != w.shape:
                    raise ShapeError(f"{self.name}.set_weights: {layer.name}'s {w.attr} must have Keras's shape "
                                     f"{shape_text(w.shape)}, got {shape_text(tuple(getattr(value, 'shape', ())))}")
        for layer, part in parts:
            layer.set_weights(part)

    def count_params(self) -> int:
        if not self.built:
            raise ArgumentError(f"{self.name}.count_params: the model is not built yet; give it an input shape "
                                "(keras.Input or input_shape=) or call it on a batch")
        return sum(w.size for w in self.weights)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        Layer.trainable.fset(self, value)
        for layer in self._weight_layers():
            layer.trainable = value

    # --- description -----------------------------------------------------------------------------------
    def summary(self, line_length: int | None = None, positions: Any = None, print_fn: Any = None,
                **kwargs: Any) -> None:
        """Print Keras 3's table: each layer's ``name (Type)``, output shape and parameter count, and totals."""
        print_summary(self, print_fn or print)

    def save(self, filepath: Any, overwrite: bool = True) -> None:
        """A ``.keras`` path writes Keras 3's model file (real Keras loads it); any other path this
        package's ``.npz`` state dict, as ``Module.save``."""
        if str(filepath).endswith(".keras"):
            save_model(self, filepath, overwrite)
        else:
            super().save(filepath)

    def save_weights(self, filepath: Any, overwrite: bool = True) -> None:
        """The weights in Keras 3's ``.weights.h5`` layout (h5py: ``pip install 'autograd-cnn[keras]'``)."""
        save_weights(self, filepath, overwrite)

    def load_weights(self, filepath: Any, skip_mismatch: bool = False) -> None:
        """Weights from a ``.weights.h5`` file written here or by Keras 3."""
        load_weights(self, filepath, skip_mismatch)

    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable}
        config["layers"] = [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self.layers]
        return config


class Sequential(Model):
    """``keras.Sequential([layer, ...])`` or ``.add(layer)``: each layer's output is the next one's input.

    The input shape comes from the first layer's ``input_shape=``, from a ``keras.Input`` added
    first, or from the first batch (``build(input_shape)`` also sets it).
    """

    def __init__(self, layers: list | None = None, name: str | None = None, trainable: bool = True) -> None:
        Layer.__init__(self, name=name or graph.unique_name("sequential"), trainable=trainable)
        object.__setattr__(self, "_nodes", [])
        object.__setattr__(self, "_model_layers", [])
        object.__setattr__(self, "_output_shapes", {})
        object.__setattr__(self, "_input_layer", None)
        object.__setattr__(self, "_last_output", None)
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise ArgumentTypeError(f"Sequential: layers must be a list of layers, got {type(layers).__name__}")
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: Any) -> None:
        """Append a layer (or set the input, for a ``keras.Input`` given first); a layer that does not
        fit the model's current output is refused and the model stays as it was."""
        if isinstance(layer, KerasTensor):
            layer = layer._keras_history[0]
        if isinstance(layer, InputLayer):
            if self._model_layers:
                raise ArgumentError(f"{self.name}.add: a keras.Input can only come first")
            object.__setattr__(self, "_input_layer", layer)
            object.__setattr__(self, "_last_output", layer.output)
            return
        if not isinstance(layer, Layer):
            raise ArgumentTypeError(f"{self.name}.add: expects a keras layer, got {type(layer).__name__}")
        if any(other.name == layer.name for other in self._model_layers):
            raise ArgumentError(f"{self.name}.add: the model already has a layer named {layer.name!r}; "
                                "every layer in a model needs its own name")
        if not self._model_layers and self._input_layer is None and layer._batch_input_shape is not None:
            object.__setattr__(self, "_input_layer", InputLayer(batch_shape=layer._batch_input_shape))
            object.__setattr__(self, "_last_output", self._input_layer.output)
        if self._input_layer is not None:
            output = layer(self._last_output)  # a layer that does not fit the model raises here
            self._output_shapes[layer.name] = output.shape
            object.__setattr__(self, "_last_output", output)
            object.__setattr__(self, "built", True)
        self._model_layers.append(layer)
        self.add_module(layer.name, layer)

    def pop(self) -> Layer:
        if not self._model_layers:
            raise ArgumentError(f"{self.name}.pop: the model has no layers")
        layer = self._model_layers.pop()
        del self._modules[layer.name]
        self._output_shapes.pop(layer.name, None)
        if self._input_layer is not None:
            self._build_graph()
        return layer

    @property
    def layers(self) -> list:
        return list(self._model_layers)

    def build(self, input_shape: Any = None) -> None:
        """Build every layer for inputs of ``input_shape`` (with the batch axis: ``(None, 784)``)."""
        if input_shape is None:
            raise ArgumentError(f"{self.name}.build: give the input shape with the batch axis, e.g. (None, 784)")
        object.__setattr__(self, "_input_layer", InputLayer(batch_shape=tuple(input_shape)))
        self._build_graph()

    def _build_graph(self) -> None:
        x = self._input_layer.output
        shapes = {}
        for layer in self._model_layers:
            x = layer(x)
            shapes[layer.name] = _shapes(graph.flatten(x))
        self._output_shapes.update(shapes)
        object.__setattr__(self, "_last_output", x)
        object.__setattr__(self, "built", True)

    def _build_for(self, input_shape: Any) -> None:
        if self._input_layer is None:
            self.build((None,) + tuple(input_shape[1:]))

    def _check_input(self, inputs: Any) -> None:
        if self._input_layer is not None:
            _check_against_input(self, self._input_layer.output, inputs)

    def call(self, inputs: Any) -> Any:
        x = inputs
        for layer in self._model_layers:
            x = layer(x)
        return x

    def compute_output_shape(self, input_shape: Any) -> Any:
        return Layer.compute_output_shape(self, input_shape)

    @property
    def inputs(self) -> list:
        return [self._input_layer.output] if self._input_layer is not None else []

    @property
    def outputs(self) -> list:
        return [self._last_output] if self._input_layer is not None and self._model_layers else []

    @property
    def input(self) -> Any:
        return self.inputs[0] if self.inputs else Layer.input.fget(self)

    @property
    def output(self) -> Any:
        return self.outputs[0] if self.outputs else Layer.output.fget(self)


# --------------------------------------------------------------------------- helpers


def _shapes(tensors: list) -> Any:
    return tensors[0].shape if len(tensors) == 1 else [t.shape for t in tensors]


def _unique(tensors: list) -> list:
    seen, out = set(), []
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def _check_against_input(model: Any, tensor: KerasTensor, x: Any) -> None:
    """A batch fits the model's Input: the same rank and every fixed size; else say what to do."""
    shape = getattr(x, "shape", None)
    if shape is None:
        raise ArgumentTypeError(f"{model.name}: expects a tensor or an array for input {tensor.name!r}, "
                                f"got {type(x).__name__}")
    want = tensor.shape
    if len(shape) == len(want) and all(w is None or w == s for w, s in zip(want[1:], shape[1:])):
        return
    hint = ""
    if len(shape) == len(want) == 4 and tuple(shape[1:]) == (want[3], want[1], want[2]):
        hint = ("; the batch looks channels-first (N, C, H, W) where the model is channels-last (N, H, W, C): "
                "transpose it, x.transpose(0, 2, 3, 1), or build the layers with data_format='channels_first'")
    elif len(shape) == len(want) == 4 and tuple(shape[1:]) == (want[2], want[3], want[1]):
        hint = ("; the batch looks channels-last where the model is channels-first: transpose it, "
                "x.transpose(0, 3, 1, 2)")
    elif len(shape) == len(want) - 1 and tuple(shape[1:]) == tuple(want[1:-1]) and want[-1] == 1:
        hint = "; add the channel axis: x.reshape(-1, *x.shape[1:], 1) or x[..., None]"
    elif len(shape) == len(want) - 1 and tuple(shape) == tuple(want[1:]):
        hint = "; that is one sample: add the batch axis, x[None]"
    raise ShapeError(f"{model.name}: input {tensor.name!r} expects batches of shape {shape_text(want)}, got "
                     f"{shape_text(tuple(shape))}{hint}")


def _map_graph(inputs: list, outputs: list) -> tuple[list[Node], list]:
    """The nodes from ``inputs`` to ``outputs`` in an order to run them, and the layers in Keras's
    order (by depth from the outputs, deepest first; ties in the order met walking back from the
    outputs), which is the order of ``layers`` and of ``get_weights``."""
    input_ids = {id(t) for t in inputs}
    finished: list[Node] = []
    done: set[int] = set()
    first_met: dict[int, int] = {}
    reached: set[int] = set()

    def visit(tensor: KerasTensor, path: tuple) -> None:
        layer, node, _ = tensor._keras_history
        if id(node) in done:
            if id(tensor) in input_ids:
                reached.add(id(tensor))
            return
        if id(node) in path:
            raise ArgumentError(f"Model: the graph has a cycle through {layer!r}")
        first_met.setdefault(id(layer), len(first_met))
        if id(tensor) in input_ids:
            reached.add(id(tensor))
        elif not node.inputs:  # an InputLayer that is not among the model's inputs
            raise ArgumentError(f"Model: an output depends on the input {tensor.name!r} (shape "
                                f"{shape_text(tensor.shape)}), which is not in inputs=; add it to inputs, "
                                "or build the output from the given inputs only")
        else:
            for t in node.inputs:
                visit(t, path + (id(node),))
        done.add(id(node))
        finished.append(node)

    for t in outputs:
        visit(t, ())
    missing = [t for t in inputs if id(t) not in reached]
    if missing:
        raise ArgumentError(f"Model: the input {missing[0].name!r} (shape {shape_text(missing[0].shape)}) is not "
                            "connected to any output; leave it out of inputs=, or use it on the way to an output")
    depth: dict[int, int] = {}
    layer_depth: dict[int, int] = {}
    for node in reversed(finished):
        d = max(depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth[id(node)] = d
        for t in node.inputs:
            inbound = t._keras_history[1]
            depth[id(inbound)] = max(d + 1, depth.get(id(inbound), 0))
    layers = list({id(n.layer): n.layer for n in finished}.values())
    layers.sort(key=lambda layer: (-layer_depth[id(layer)], first_met[id(layer)]))
    inputs_first = [t._keras_history[0] for t in inputs]
    layers = inputs_first + [layer for layer in layers if layer not in inputs_first]
    return finished, layers


def load_model(filepath: str | os.PathLike, custom_objects: dict | None = None, compile: bool = True,
               safe_mode: bool = True) -> Any:
    """The model of a ``.keras`` file written by Keras 3 (or ``save_model``): built from its config with
    this package's layers, its weights loaded, and compiled as it was when ``compile`` (where the
    file says how)."""
    path = os.fspath(filepath)
    saving.must_exist("load_model", path)
    if not zipfile.is_zipfile(path):
        if path.endswith((".h5", ".hdf5")):
            raise CheckpointError(f"load_model: {path} is Keras 2's HDF5 model format; open it in Keras 3 and "
                                  "save it again as .keras (model.save('model.keras'))")
        raise CheckpointError(f"load_model: {path} is not a .keras file (a zip of config.json and "
                              "model.weights.h5)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if saving.CONFIG not in names or saving.WEIGHTS not in names:
            raise CheckpointError(f"load_model: {path} holds {names}, not {saving.CONFIG} and {saving.WEIGHTS}")
        config = json.loads(archive.read(saving.CONFIG))
        model, keys = model_from_config(config, custom_objects, model_class=Model, sequential_class=Sequential)
        h5py = saving.h5py_module()
        with h5py.File(io.BytesIO(archive.read(saving.WEIGHTS)), "r") as f:
            saving.read_weights(model, f, f"load_model({path!r})", keys)
            optimizer_variables = saving.read_optimizer(f)
    if compile and config.get("compile_config"):
        saving.compile_as_saved(model, config["compile_config"], path)
        saving.restore_optimizer(model, optimizer_variables, path)
    return model
