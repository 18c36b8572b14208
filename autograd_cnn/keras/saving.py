"""Keras 3's files: the ``.keras`` model file and the ``.weights.h5`` weights file, both ways.

    model = keras.saving.load_model("lecture_cnn.keras")      # written by Keras 3, or here
    keras.saving.save_model(model, "lecture_cnn.keras")       # real Keras loads it
    keras.saving.save_weights(model, "cnn.weights.h5"); keras.saving.load_weights(model, "cnn.weights.h5")

A ``.keras`` file is a zip of ``metadata.json``, ``config.json`` (the model: each layer's class
and arguments, and for a functional model the calls that connect them) and ``model.weights.h5``.
The weights file holds each layer's weights in Keras's layouts under ``layers/<key>/vars/<i>``,
where ``<key>`` is the layer's class in snake case, numbered in the model's layer order
(``conv2d``, ``conv2d_1``): not the layer's name, which differs between two builds of a model.
Only what Keras saves of the optimizer is left out (its state starts afresh after loading).
Reading and writing HDF5 needs h5py: ``pip install 'autograd-cnn[keras]'``.
"""
from __future__ import annotations

import datetime
import inspect
import io
import json
import os
import re
import tempfile
import warnings
import zipfile
from typing import Any

from ..errors import ArgumentError, ArgumentTypeError, CheckpointError

KERAS_VERSION = "3.15.1"  # the format written: what Keras 3 reads
_CONFIG, _METADATA, _WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
# Keras arguments a layer here does not take, harmless at these values (anything else is refused).
_HARMLESS = {"renorm_momentum": 0.99, "seed": None, "noise_shape": None, "lora_rank": None, "lora_alpha": None}


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as e:
        raise ImportError("Keras's .keras and .weights.h5 files are HDF5, read and written with h5py: "
                          "pip install 'autograd-cnn[keras]' (or pip install h5py)") from e
    return h5py


# --------------------------------------------------------------------------- weights


def _snake_case(name: str) -> str:
    """Keras's snake case of a class name: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _keys(class_names: list[str]) -> list[str]:
    """Each layer's key in the weights file: its class in snake case, numbered from the second of a kind."""
    used: dict[str, int] = {}
    keys = []
    for name in class_names:
        key = _snake_case(name)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        keys.append(key)
    return keys


def _keyed(layers: list) -> list[tuple[str, Any]]:
    """(key, layer) for a model's layers in its order."""
    return list(zip(_keys([type(layer).__name__ for layer in layers]), layers))


def _sublayers(layer: Any) -> list | None:
    """A model's layers (it nests: its weights are under its own ``layers``), None for a plain layer."""
    from .models import Model

    return layer.layers if isinstance(layer, Model) else None


def _write_weights(layer: Any, group: Any) -> None:
    inner = _sublayers(layer)
    if inner is not None:
        layers = group.create_group("layers")
        for key, sub in _keyed(inner):
            _write_weights(sub, layers.create_group(key))
        variables = group.create_group("vars")
    else:
        variables = group.create_group("vars")
        for i, array in enumerate(layer.get_weights()):
            variables.create_dataset(str(i), data=array)
    variables.attrs["name"] = layer.name


def _read_weights(layer: Any, group: Any, where: str, keys: dict[str, str] | None = None) -> None:
    """Copy the weights under ``group`` into ``layer``; ``keys``: each layer's key by its name, where the
    file's order of layers is known (a config's) rather than the model's."""
    inner = _sublayers(layer)
    if inner is not None:
        layers = group.get("layers")
        keyed = [(keys[sub.name], sub) for sub in inner] if keys is not None else _keyed(inner)
        for key, sub in keyed:
            if layers is None or key not in layers:
                if sub.get_weights():
                    found = ", ".join(layers) if layers is not None else "nothing"
                    raise CheckpointError(f"{where}: no weights for layer {sub.name!r} ({type(sub).__name__}, "
                                          f"expected under {group.name.rstrip('/')}/layers/{key}); the file holds "
                                          f"{found}. Is it the file of this model?")
                continue
            _read_weights(sub, layers[key], where)
        return
    variables = group.get("vars")
    arrays = [variables[str(i)][()] for i in range(len(variables))] if variables is not None else []
    try:
        layer.set_weights(arrays)
    except (ArgumentError, ValueError) as e:
        raise CheckpointError(f"{where}: the weights under {group.name} do not fit layer {layer.name!r}: {e}") from e


def save_weights(model: Any, filepath: str | os.PathLike, overwrite: bool = True) -> None:
    """Write the model's weights as Keras 3's ``.weights.h5`` (Keras's ``model.load_weights`` reads it)."""
    path = os.fspath(filepath)
    if not path.endswith(".weights.h5"):
        raise ArgumentError(f"save_weights: the file name must end in .weights.h5, as Keras's, got {path!r}")
    _check_overwrite("save_weights", path, overwrite)
    h5py = _h5py()

    def write(target: str) -> None:
        with h5py.File(target, "w") as f:
            _write_weights(model, f)

    _write_whole(path, write)


def load_weights(model: Any, filepath: str | os.PathLike, skip_mismatch: bool = False) -> None:
    """Read weights written by ``save_weights`` here or by Keras 3 (a ``.weights.h5`` or a ``.keras`` file)
    into a model of the same layers. All arrays are checked against the layers as they are copied."""
    path = os.fspath(filepath)
    if skip_mismatch:
        raise ArgumentError("load_weights: skip_mismatch=True is not available; every layer must fit")
    _must_exist("load_weights", path)
    h5py = _h5py()
    if path.endswith(".keras"):
        with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read(_WEIGHTS)), "r") as f:
            _read_weights(model, f, f"load_weights({path!r})")
        return
    if not path.endswith(".h5"):
        raise ArgumentError(f"load_weights: reads .weights.h5 and .keras files, got {path!r}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise CheckpointError(f"load_weights: {path} is not an HDF5 file ({e})") from e
    with f:
        if "layers" not in f and "model_weights" in f:
            raise CheckpointError(f"load_weights: {path} is in Keras 2's HDF5 layout; open it in Keras 3 and "
                                  "save it again with model.save_weights('x.weights.h5')")
        _read_weights(model, f, f"load_weights({path!r})")


# --------------------------------------------------------------------------- the model's config


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
    from .models import Model, Sequential

    if isinstance(model, Sequential):
        config = _sequential_config(model)
    elif isinstance(model, Model) and getattr(model, "_nodes", None):
        config = _functional_config(model)
    else:
        raise ArgumentTypeError(f"save_model: saves a functional keras.Model or a keras.Sequential, got "
                                f"{type(model).__name__}; for any model, save_weights writes its weights")
    compiled = _compile_config(model)
    if compiled is not None:
        config["compile_config"] = compiled
    return config


def save_model(model: Any, filepath: str | os.PathLike, overwrite: bool = True) -> None:
    """Write ``filepath`` (ending in ``.keras``) as Keras 3 writes it: Keras's ``load_model`` opens it."""
    path = os.fspath(filepath)
    if not path.endswith(".keras"):
        raise ArgumentError(f"save_model: the file name must end in .keras, got {path!r}; for the weights "
                            "alone use save_weights('x.weights.h5')")
    if not model.built:
        raise ArgumentError(f"save_model: {model.name} is not built yet; give it an input shape or call it first")
    _check_overwrite("save_model", path, overwrite)
    config = json.dumps(model_config(model))
    metadata = json.dumps({"keras_version": KERAS_VERSION,
                           "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")})
    h5py = _h5py()

    def write(target: str) -> None:
        weights = io.BytesIO()  # HDF5 seeks as it writes: built in memory, then stored in the zip
        with h5py.File(weights, "w") as f:
            _write_weights(model, f)
        with zipfile.ZipFile(target, "w") as archive:
            archive.writestr(_METADATA, metadata)
            archive.writestr(_CONFIG, config)
            archive.writestr(_WEIGHTS, weights.getvalue())

    _write_whole(path, write)


# --------------------------------------------------------------------------- loading


def load_model(filepath: str | os.PathLike, custom_objects: dict | None = None, compile: bool = True,
               safe_mode: bool = True) -> Any:
    """The model of a ``.keras`` file written by Keras 3 (or ``save_model``): built from its config with
    this package's layers, its weights loaded, and compiled as it was when ``compile`` (where the
    file says how)."""
    path = os.fspath(filepath)
    _must_exist("load_model", path)
    if not zipfile.is_zipfile(path):
        if path.endswith((".h5", ".hdf5")):
            raise CheckpointError(f"load_model: {path} is Keras 2's HDF5 model format; open it in Keras 3 and "
                                  "save it again as .keras (model.save('model.keras'))")
        raise CheckpointError(f"load_model: {path} is not a .keras file (a zip of config.json and "
                              "model.weights.h5)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if _CONFIG not in names or _WEIGHTS not in names:
            raise CheckpointError(f"load_model: {path} holds {names}, not {_CONFIG} and {_WEIGHTS}")
        config = json.loads(archive.read(_CONFIG))
        model, keys = model_from_config(config, custom_objects)
        h5py = _h5py()
        with h5py.File(io.BytesIO(archive.read(_WEIGHTS)), "r") as f:
            _read_weights(model, f, f"load_model({path!r})", keys)
    if compile and config.get("compile_config"):
        _compile(model, config["compile_config"], path)
    return model


def _compile(model: Any, config: dict, path: str) -> None:
    from . import losses, optimizers

    loss = config.get("loss")
    if isinstance(loss, dict) and loss.get("class_name") == "function":
        loss = loss.get("config")
    try:
        model.compile(optimizer=optimizers.get(config.get("optimizer") or "rmsprop"), loss=losses.get(loss),
                      metrics=config.get("metrics"))
    except ArgumentError as e:  # as Keras does: the model loads, uncompiled, with a warning
        warnings.warn(f"load_model: {path} was compiled in a way this package cannot repeat ({e}); the model "
                      "is loaded uncompiled: call compile(...) before fit", stacklevel=3)


def model_from_config(config: dict, custom_objects: dict | None = None) -> tuple[Any, dict[str, str]]:
    """The model a Keras 3 ``config.json`` describes, and each layer's key in its weights file, by name."""
    from . import layers as keras_layers
    from .models import Model, Sequential

    kind, inner = config.get("class_name"), config.get("config") or {}
    classes = {**{n: getattr(keras_layers, n) for n in dir(keras_layers) if not n.startswith("_")},
               **(custom_objects or {})}
    entries = inner.get("layers") or []
    if kind == "Sequential":
        entries_with_weights = [e for e in entries if e.get("class_name") != "InputLayer"]
    else:
        entries_with_weights = entries
    keys = dict(zip([(e.get("config") or {}).get("name") for e in entries_with_weights],
                    _keys([e.get("class_name") for e in entries_with_weights])))
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


# --------------------------------------------------------------------------- files


def _must_exist(op: str, path: str) -> None:
    if not os.path.isfile(path):
        raise CheckpointError(f"{op}: no file {path!r}" + (" (it is a folder)" if os.path.isdir(path) else ""))


def _check_overwrite(op: str, path: str, overwrite: bool) -> None:
    if not overwrite and os.path.exists(path):
        raise CheckpointError(f"{op}: {path} exists and overwrite=False")


def _write_whole(path: str, write: Any) -> None:
    """``write(temporary path)``, then the file renamed over ``path``: a failure leaves no half file."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".part", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise CheckpointError(f"could not write {path}: {e}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


__all__ = ["load_model", "load_weights", "model_config", "model_from_config", "save_model", "save_weights"]
