"""``ag.save(obj, path)`` and ``ag.load(path)``: checkpoints as one NumPy ``.npz`` file.

Each array is a member named after its key ("0.weight"), so ``numpy.load`` can read a
checkpoint too. A ``__structure__`` member (JSON) records how the arrays nest (a state
dict, an optimizer's state, a lone tensor) and ``__format__`` the format's version.
The file is written to a temporary name in the same folder and renamed, so a crash
never leaves a half-written checkpoint behind.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from typing import Any

import numpy as np

from .errors import CheckpointError
from .tensor import Tensor

FORMAT = "autograd_cnn checkpoint"
VERSION = 1


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write a tensor, an array, or a (nested) dict of them with numbers and strings, to ``path``.

    Tensors are stored as host arrays (``.numpy()``) with their dtype. The write is atomic.
    """
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {}
    structure = _encode(obj, "", arrays)
    members = {"__format__": np.array(FORMAT), "__version__": np.array(VERSION),
               "__structure__": np.array(json.dumps(structure))}
    members.update(arrays)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike) -> Any:
    """Read what ``save`` wrote: tensors come back on the active backend, with their dtype."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"ag.load: no checkpoint at {path}")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise CheckpointError(f"ag.load: {path} holds a single NumPy array, not a checkpoint written "
                                  "by ag.save; read it with numpy.load")
        with data:
            if "__format__" not in data.files or str(data["__format__"]) != FORMAT:
                raise CheckpointError(f"ag.load: {path} is a .npz file that ag.save did not write (no "
                                      f"'__format__' entry; it holds {sorted(data.files)[:5]}); read it with "
                                      "numpy.load")
            version = int(data["__version__"])
            if version > VERSION:
                raise CheckpointError(f"ag.load: {path} has checkpoint format {version}, newer than this "
                                      f"autograd_cnn reads ({VERSION}); upgrade autograd_cnn")
            structure = json.loads(str(data["__structure__"]))
            return _decode(structure, data, path)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, zlib.error) as err:
        raise CheckpointError(f"ag.load: {path} is not a readable checkpoint (corrupt or truncated?): "
                              f"{type(err).__name__}: {err}") from None


def _encode(obj: Any, key: str, arrays: dict) -> Any:
    """A JSON description of ``obj``; its arrays go into ``arrays`` under unique member names."""
    if isinstance(obj, (Tensor, np.ndarray)) or hasattr(obj, "__cuda_array_interface__"):
        host = obj.numpy() if isinstance(obj, Tensor) else np.asarray(obj.get() if hasattr(obj, "get") else obj)
        if host.dtype == object:
            raise TypeError(f"ag.save: {key or 'the object'} is an object array; save numbers only")
        name = key or "tensor"
        while name in arrays or name.startswith("__"):
            name += "_"
        arrays[name] = host
        return {"tensor" if isinstance(obj, Tensor) else "array": name}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"ag.save: dict keys must be str or int, got {type(k).__name__}")
            items.append([k, _encode(v, f"{key}/{k}" if key else str(k), arrays)])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(v, f"{key}/{i}" if key else str(i), arrays) for i, v in enumerate(obj)]}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    raise TypeError(f"ag.save: cannot save {key or 'the object'} of type {type(obj).__name__}; save tensors, "
                    "arrays, numbers, strings, and dicts or lists of them (model.state_dict())")


def _decode(node: dict, data: Any, path: str) -> Any:
    from .backends import get_backend
    from .tensor import tensor

    if "tensor" in node:
        return tensor(data[node["tensor"]], backend=get_backend())
    if "array" in node:
        return data[node["array"]]
    if "dict" in node:
        return {k: _decode(v, data, path) for k, v in node["dict"]}
    if "list" in node:
        return [_decode(v, data, path) for v in node["list"]]
    if "tuple" in node:
        return tuple(_decode(v, data, path) for v in node["tuple"])
    if "value" in node:
        return node["value"]
    raise CheckpointError(f"ag.load: {path} has an entry this autograd_cnn does not understand: {node}")
