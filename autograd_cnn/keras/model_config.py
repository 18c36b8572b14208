"""A Keras model as Keras 3's ``config.json`` and back: what a ``.keras`` file says of the model.

``model_config(model)`` describes a functional ``Model`` or a ``Sequential`` as Keras 3 does: each
layer's class and arguments (its ``get_config``), and for a functional model each call that
connects them (``inbound_nodes``, tensors named by ``keras_history``); what ``compile`` was given,
where Keras can read it. ``model_from_config(config)`` builds the model again with this package's
layers: arguments a layer here does not take are refused, unless harmless at their value.
``weight_keys`` names each layer's group in the weights file as Keras does (``keras/saving.py``).
"""
from __future__ import annotations

import inspect
import re
from typing import Any

from ..errors import ArgumentTypeError, CheckpointError

# Keras arguments a layer here does not take, harmless at these values (anything else is refused).
_HARMLESS = {"renorm_momentum": 0.99, "seed": None, "noise_shape": None, "lora_rank": None, "lora_alpha": None}


def snake_case(name: str) -> str:
    """Keras's snake case of a class name: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def weight_keys(class_names: list[str]) -> list[str]:
    """Each layer's key in the weights file: its class in snake case, numbered from the second of a kind."""
    used: dict[str, int] = {}
    keys = []
    for name in class_names:
        key = snake_case(name)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        keys.append(key)
    return keys


def _plain(value: Any) -> Any:
    """JSON's form of a config value: tuples as lists, NumPy numbers as Python's."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    if callable(value):
        raise ArgumentTypeError(f"save_model: a layer holds {value!r}, which a .keras file cannot name; "
                                "use a built-in activation or initializer name")
    return value


def _layer_entry(layer: Any) -> dict:
    return {"module": "keras.layers", "class_name": type(layer).__name__, "config": _plain(layer.get_config()),
            "registered_name": None, "name": layer.name}


def _tensor_ref(tensor: Any) -> dict:
    layer, node, index = tensor._keras_history
    return {"class_name": "__keras_tensor__",
            "config": {"shape": list(tensor.shape), "dtype": tensor.dtype,
                       "keras_history": [layer.name, layer._inbound_nodes.index(node), index]}}


def _input_shapes(node: Any) -> Any:
    """The shape of a call's input argument (a list of shapes for a merge layer's list): what
    Keras builds the layer with."""
    return _plain(node.arguments(lambda t: list(t.shape)))


def _functional_config(model: Any) -> dict:
    nodes_of: dict[int, list] = {}
    for node in model._nodes:
        nodes_of.setdefault(id(node.layer), []).append(node)
    layers = []
    for layer in model.layers:
        entry = _layer_entry(layer)
        calls = nodes_of.get(id(layer), [])
        if calls:
            entry["build_config"] = {"input_shape": _input_shapes(calls[0])}
        entry["inbound_nodes"] = [{"args": [node.arguments(_tensor_ref)], "kwargs": _plain(node.kwargs)}
                                  for node in calls]
        layers.append(entry)

    def ends(tensors: list, struct: Any) -> list:
        refs = [_tensor_ref(t)["config"]["keras_history"] for t in tensors]
        return refs if isinstance(struct, (list, tuple)) else refs[0]

    return {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": model.name, "trainable": model.trainable, "layers": layers,
                       "input_layers": ends(model.inputs, model._inputs_struct),
                       "output_layers": ends(model.outputs, model._outputs_struct)},
            "build_config": {"input_shape": None}}


def _sequential_config(model: Any) -> dict:
    layers = []
    shape = None
    if model.inputs:
        shape = _plain(model.inputs[0].shape)
        layers.append({"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                       "config": {"batch_shape": shape, "dtype": "float32", "name": model._input_layer.name}})
    for layer in model.layers:
        entry = _layer_entry(layer)
        if layer._inbound_nodes:
            entry["build_config"] = {"input_shape": _input_shapes(layer._inbound_nodes[-1])}
        layers.append(entry)
    config = {"name": model.name, "trainable": model.trainable, "dtype": "float32", "layers": layers}
    if shape is not None:
        config["build_input_shape"] = shape
    return {"module": "keras", "class_name": "Sequential", "registered_name": None, "config": config,
            "build_config": {"input_shape": shape}}


def _compile_config(model: Any) -> dict | None:
    """What compile was given, in Keras's form, where Keras can read it (else None: saved uncompiled)."""
    from . import losses, optimizers

    args = getattr(model, "_compile_args", None)
    if args is None:
        return None
    optimizer, loss, metrics, _ = args
    if not isinstance(optimizer, optimizers.Optimizer):
        return None
    if isinstance(loss, losses.Loss):
        loss = {"module": "keras.losses", "class_name": type(loss).__name__, "config": _plain(loss.get_config()),
                "registered_name": None}
    elif callable(loss) and getattr(loss, "__name__", None) in losses.FUNCTIONS:
        loss = loss.__name__
    elif not isinstance(loss, str):
        return None
    if metrics is not None and not all(isinstance(m, str) for m in metrics):
        metrics = None
    return {"optimizer": {"module": "keras.optimizers", "registered_name": None,
                          **_plain(optimizers.serialize(optimizer))},
            "loss": loss, "loss_weights": None, "metrics": metrics, "weighted_metrics": None,
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def model_config(model: Any) -> dict:
    """The ``config.json`` of a ``.keras`` file for this functional or Sequential model."""
    if is_keras_model(model, "Sequential"):
        config = _sequential_config(model)
    elif is_keras_model(model, "Model") and getattr(model, "_nodes", None):
        config = _functional_config(model)
    else:
        raise ArgumentTypeError(f"save_model: saves a functional keras.Model or a keras.Sequential, got "
                                f"{type(model).__name__}; for any model, save_weights writes its weights")
    compiled = _compile_config(model)
    if compiled is not None:
        config["compile_config"] = compiled
    return config


def is_keras_model(obj: Any, class_name: str) -> bool:
    """Whether ``obj`` is a keras ``Model`` (or ``Sequential``), known by its classes' names: the models
    module sits above this one (its ``save`` methods write through here), so this one cannot import it."""
    return any(c.__name__ == class_name and c.__module__.endswith("keras.models") for c in type(obj).__mro__)


def model_from_config(config: dict, custom_objects: dict | None = None, *, model_class: type,
                      sequential_class: type) -> tuple[Any, dict[str, str]]:
    """The model a Keras 3 ``config.json`` describes, and each layer's key in its weights file, by name.
    The caller (``keras.models.load_model``) hands in the two model classes."""
    from . import layers as keras_layers

    Model, Sequential = model_class, sequential_class  # noqa: N806 (the classes, by their names)

    kind, inner = config.get("class_name"), config.get("config") or {}
    classes = {**{n: getattr(keras_layers, n) for n in dir(keras_layers) if not n.startswith("_")},
               **(custom_objects or {})}
    entries = inner.get("layers") or []
    if kind == "Sequential":
        entries_with_weights = [e for e in entries if e.get("class_name") != "InputLayer"]
    else:
        entries_with_weights = entries
    keys = dict(zip([(e.get("config") or {}).get("name") for e in entries_with_weights],
                    weight_keys([e.get("class_name") for e in entries_with_weights])))
    if kind == "Sequential":
        model = Sequential(name=inner.get("name"))
        for entry in entries:
            model.add(_layer_from_config(entry, classes))
        if not model.built and inner.get("build_input_shape"):
            model.build(tuple(inner["build_input_shape"]))
        return model, keys
    if kind not in ("Functional", "Model"):
        raise CheckpointError(f"load_model: a {kind!r} model cannot be rebuilt here; this package builds "
                              "functional models and Sequential ones from their config")
    made: dict[tuple[str, int], Any] = {}  # (layer name, node index) -> its output(s)
    pending = [(entry, _layer_from_config(entry, classes)) for entry in entries]
    calls = [(layer, entry["name"], i, node) for entry, layer in pending
             for i, node in enumerate(entry.get("inbound_nodes") or [])]
    for entry, layer in pending:
        if entry["class_name"] == "InputLayer":
            made[(entry["name"], 0)] = layer.output
    while calls:
        ready = [c for c in calls if _refs_made(c[3], made)]
        if not ready:
            raise CheckpointError(f"load_model: the config's layer calls cannot be ordered (waiting: "
                                  f"{', '.join(c[1] for c in calls)})")
        for layer, name, i, node in ready:
            args = _fill_refs(node.get("args") or [], made)
            kwargs = {k: v for k, v in (node.get("kwargs") or {}).items() if v is not None}
            made[(name, i)] = layer(*args, **kwargs)
            calls.remove((layer, name, i, node))

    def ends(refs: Any) -> Any:
        if refs and isinstance(refs[0], str):  # one [name, node, index]
            out = made[(refs[0], refs[1])]
            return out[refs[2]] if isinstance(out, list) else out
        return [ends(r) for r in refs]

    model = Model(inputs=ends(inner["input_layers"]), outputs=ends(inner["output_layers"]), name=inner.get("name"))
    return model, keys


def _refs_made(node: Any, made: dict) -> bool:
    if isinstance(node, dict) and node.get("class_name") == "__keras_tensor__":
        name, index, _ = node["config"]["keras_history"]
        return (name, index) in made
    if isinstance(node, dict):
        return all(_refs_made(v, made) for v in node.values())
    if isinstance(node, list):
        return all(_refs_made(v, made) for v in node)
    return True


def _fill_refs(node: Any, made: dict) -> Any:
    if isinstance(node, dict) and node.get("class_name") == "__keras_tensor__":
        name, index, which = node["config"]["keras_history"]
        out = made[(name, index)]
        return out[which] if isinstance(out, list) else out
    if isinstance(node, dict):
        return {k: _fill_refs(v, made) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill_refs(v, made) for v in node]
    return node


def _layer_from_config(entry: dict, classes: dict) -> Any:
    """One layer from its Keras config, with the arguments this package's class takes."""
    name = entry.get("class_name")
    cls = classes.get(name)
    if cls is None:
        raise CheckpointError(f"load_model: the file uses layer {name!r}, which autograd_cnn.keras does not "
                              f"have; its layers are {', '.join(sorted(k for k in classes if k[0].isupper()))}")
    config = dict(entry.get("config") or {})
    if name == "InputLayer":
        return cls(batch_shape=tuple(config.get("batch_shape") or ()), name=config.get("name"),
                   dtype=_dtype(config.get("dtype")))
    accepted = inspect.signature(cls.__init__).parameters
    takes = set(accepted) | {"name", "trainable", "dtype"}
    kwargs = {}
    for key, value in config.items():
        if key == "dtype":
            value = _dtype(value)
        elif isinstance(value, dict) and "class_name" in value:
            value = _object(value)
        if key in takes:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        elif value not in (None, False, {}) and _HARMLESS.get(key, object()) != value:
            raise CheckpointError(f"load_model: layer {config.get('name')!r} ({name}) has {key}={value!r}, which "
                                  f"autograd_cnn.keras's {name} does not take")
    return cls(**kwargs)


def _dtype(value: Any) -> Any:
    """A Keras dtype policy ({"class_name": "DTypePolicy", "config": {"name": "float32"}}) as its name."""
    if isinstance(value, dict):
        return (value.get("config") or {}).get("name", "float32")
    return value


def _object(value: dict) -> Any:
    """An initializer (or the like) from its Keras config: its class name, which the layers take."""
    return value["class_name"]


__all__ = ["model_config", "model_from_config", "snake_case", "weight_keys"]
