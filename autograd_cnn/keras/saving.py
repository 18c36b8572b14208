"""Keras 3's files: the ``.keras`` model file and the ``.weights.h5`` weights file, both ways.

    model = keras.saving.load_model("lecture_cnn.keras")      # written by Keras 3, or here
    keras.saving.save_model(model, "lecture_cnn.keras")       # real Keras loads it
    keras.saving.save_weights(model, "cnn.weights.h5"); keras.saving.load_weights(model, "cnn.weights.h5")

A ``.keras`` file is a zip of ``metadata.json``, ``config.json`` (the model: each layer's class
and arguments, and for a functional model the calls that connect them) and ``model.weights.h5``.
The weights file holds each layer's weights in Keras's layouts under ``layers/<key>/vars/<i>``,
where ``<key>`` is the layer's class in snake case, numbered in the model's layer order
(``conv2d``, ``conv2d_1``): not the layer's name, which differs between two builds of a model.
The model's structure is ``keras/model_config.py``'s. A compiled model's optimizer writes its
variables under ``optimizer/vars`` as Keras's does (the step count, the rate, then its moments in
Keras's order and layouts), so training goes on from a loaded file as it would have. Reading and
writing HDF5 needs h5py: ``pip install 'autograd-cnn[keras]'``.
"""
from __future__ import annotations

import datetime
import io
import json
import os
import tempfile
import warnings
import zipfile
from typing import Any

from ..errors import ArgumentError, CheckpointError
from .model_config import is_keras_model, model_config, model_from_config, weight_keys

KERAS_VERSION = "3.15.1"  # the format written: what Keras 3 reads
CONFIG, _METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"


def h5py_module() -> Any:
    try:
        import h5py
    except ImportError as e:
        raise ImportError("Keras's .keras and .weights.h5 files are HDF5, read and written with h5py: "
                          "pip install 'autograd-cnn[keras]' (or pip install h5py)") from e
    return h5py


# --------------------------------------------------------------------------- weights


def _keyed(layers: list) -> list[tuple[str, Any]]:
    """(key, layer) for a model's layers in its order."""
    return list(zip(weight_keys([type(layer).__name__ for layer in layers]), layers))


def _sublayers(layer: Any) -> list | None:
    """A model's layers (it nests: its weights are under its own ``layers``), None for a plain layer."""
    return layer.layers if is_keras_model(layer, "Model") else None


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


def trainable_slots(model: Any) -> list[tuple[Any, Any, tuple]]:
    """(parameter, its Layout, Keras's shape) for each trainable weight, in Keras's order
    (``model.trainable_variables``): what the optimizer keeps its slots for."""
    seen, out = set(), []
    for layer in model._weight_layers():
        if not layer._trainable:
            continue
        for w in layer._ordered_weights():
            t = getattr(layer, w.attr)
            if w.trainable and id(t) not in seen:
                seen.add(id(t))
                out.append((t, w.layout, w.shape))
    return out


def _write_optimizer(model: Any, f: Any) -> None:
    """The optimizer's variables under ``optimizer/vars``, as Keras 3 writes them (a compiled model
    with a ``keras.optimizers`` optimizer only)."""
    from .optimizers import Optimizer

    optimizer = getattr(model, "optimizer", None)
    if isinstance(optimizer, Optimizer) and optimizer.built:
        variables = f.create_group("optimizer").create_group("vars")
        variables.attrs["name"] = optimizer.name
        for i, array in enumerate(optimizer.keras_variables(trainable_slots(model))):
            variables.create_dataset(str(i), data=array)


def read_optimizer(f: Any) -> list | None:
    """The optimizer's variables in a weights file, in order; None where it holds none."""
    variables = f.get("optimizer/vars")
    return None if variables is None else [variables[str(i)][()] for i in range(len(variables))]


def restore_optimizer(model: Any, arrays: list | None, path: str) -> None:
    """Give the compiled model's optimizer the variables read from ``path`` (its moments and step count)."""
    from .optimizers import Optimizer

    optimizer = getattr(model, "optimizer", None)
    if arrays and isinstance(optimizer, Optimizer) and optimizer.built:
        optimizer.set_keras_variables(trainable_slots(model), arrays, f"load_model({path!r})")


def read_weights(layer: Any, group: Any, where: str, keys: dict[str, str] | None = None) -> None:
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
            read_weights(sub, layers[key], where)
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
    h5py = h5py_module()

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
    must_exist("load_weights", path)
    h5py = h5py_module()
    if path.endswith(".keras"):
        with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read(WEIGHTS)), "r") as f:
            read_weights(model, f, f"load_weights({path!r})")
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
        read_weights(model, f, f"load_weights({path!r})")


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
    h5py = h5py_module()

    def write(target: str) -> None:
        weights = io.BytesIO()  # HDF5 seeks as it writes: built in memory, then stored in the zip
        with h5py.File(weights, "w") as f:
            _write_weights(model, f)
            _write_optimizer(model, f)
        with zipfile.ZipFile(target, "w") as archive:
            archive.writestr(_METADATA, metadata)
            archive.writestr(CONFIG, config)
            archive.writestr(WEIGHTS, weights.getvalue())

    _write_whole(path, write)


def compile_as_saved(model: Any, config: dict, path: str) -> None:
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


# --------------------------------------------------------------------------- files


def must_exist(op: str, path: str) -> None:
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


__all__ = ["load_weights", "model_config", "model_from_config", "save_model", "save_weights"]
