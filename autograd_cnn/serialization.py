"""``ag.save(obj, path)`` and ``ag.load(path)``: checkpoints as one NumPy ``.npz`` file.

Each array is a member named after its key ("0.weight"), so ``numpy.load`` can read a
checkpoint too. A ``__structure__`` member (JSON) records how the arrays nest (a state
dict, an optimizer's state, a lone tensor) and ``__format__`` the format's version.

Nothing lost, nothing left behind: the file is written to a temporary name in the same
folder, flushed to disk and renamed over the target, so a crash or a full disk never leaves a
half-written checkpoint, and the previous one stays whole until the new one is complete. The
temporary name carries the host and the writer's process id; a later save to the same target
removes those whose writer is gone (a run killed mid-save). Errors name the target, never the
temporary file.
"""
from __future__ import annotations

import errno
import json
import os
import re
import secrets
import socket
import tokenize
import zipfile
import zlib
from typing import Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, CheckpointError
from .tensor import Tensor

FORMAT = "autograd_cnn checkpoint"
VERSION = 1

_HOST = socket.gethostname()
_TEMP_TAIL = re.compile(r"(\d+)\.[0-9a-f]+\.tmp")  # after ".<target>.<host>.": "<pid>.<random>.tmp"


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """``ag.load`` of a path where there is no file."""


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write a tensor, an array, or a (nested) dict of them with numbers and strings, to ``path``.

    Tensors are stored as host arrays (``.numpy()``) with their dtype. The write is atomic: on
    any failure the previous file at ``path`` (if any) is unchanged and no temporary file stays.
    The file gets the permissions of any new file (the umask applies).
    """
    path = _checked_path("ag.save", path)
    arrays: dict[str, np.ndarray] = {}
    structure = _encode(obj, "", arrays)
    members = {"__format__": np.array(FORMAT), "__version__": np.array(VERSION),
               "__structure__": np.array(json.dumps(structure))}
    members.update(arrays)
    folder, name = os.path.split(os.path.abspath(path))
    _clear_stale(folder, name)
    tmp = os.path.join(folder, f".{name}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL: never another writer's file; mode 0o666 less the umask, as open() gives.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        _remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, CheckpointError):
            raise _os_error(f"ag.save: could not write {path}", err, _SAVE_ADVICE) from err
        raise
    _sync_folder(folder)


def load(path: str | os.PathLike) -> Any:
    """Read what ``save`` wrote: tensors come back on the active backend, with their dtype.

    A file that is not a checkpoint (text, a truncated or damaged file, a plain NumPy file) is a
    CheckpointError saying so; ``load`` never unpickles anything.
    """
    path = _checked_path("ag.load", path)
    if os.path.isdir(path):
        raise CheckpointError(f"ag.load: {path} is a folder, not a checkpoint file")
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except FileNotFoundError:
        raise MissingCheckpointError(f"ag.load: no checkpoint at {path}") from None
    except OSError as err:
        raise _os_error(f"ag.load: cannot read {path}", err, {}) from None
    _check_head(path, head)
    try:
        with np.load(path, allow_pickle=False) as data:
            return _read(path, data)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, zlib.error, NotImplementedError,
            tokenize.TokenError, SyntaxError) as err:
        # NotImplementedError: zipfile's word for a damaged header's version or compression method;
        # TokenError and SyntaxError: NumPy's, for a member whose .npy header was damaged.
        # NumPy's words for pickled members suggest loading unsafely: not a hint to pass on.
        detail = "it holds Python objects, which ag.load never reads" if "pickle" in str(err) else \
            f"{type(err).__name__}: {err}"
        raise CheckpointError(f"ag.load: {path} is not a checkpoint or is truncated ({detail}); save it "
                              "again or use an earlier copy") from None


def _check_head(path: str, head: bytes) -> None:
    """A checkpoint is a zip archive (a .npz); say what the file is when it is not."""
    if head.startswith(b"\x93NUMPY"):
        raise CheckpointError(f"ag.load: {path} holds a single NumPy array, not a checkpoint written "
                              "by ag.save; read it with numpy.load")
    if not head:
        raise CheckpointError(f"ag.load: {path} is an empty file, not a checkpoint (a save that never "
                              "finished writing it?); use an earlier copy")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise CheckpointError(f"ag.load: {path} is not a checkpoint: ag.save writes a .npz (zip) file, "
                              f"this one starts with {head!r}; check the path")


def _read(path: str, data: Any) -> Any:
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


def _checked_path(where: str, path: Any) -> str:
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        raise ArgumentTypeError(f"{where}: path must be a str or a pathlib.Path, got {path!r}") from None
    if not text or "\0" in text:
        raise ArgumentError(f"{where}: path {text!r} is not a file name; give one such as 'model.npz'")
    return text


_SAVE_ADVICE = {
    errno.ENOSPC: "; free some disk space and save again",
    errno.EFBIG: "; the file is larger than this process may write (ulimit -f)",
    errno.ENOENT: "; create the folder first",
    errno.EACCES: "; save into a folder you can write to",
    errno.EROFS: "; save into a folder you can write to",
}


def _os_error(what: str, err: OSError, advice: dict) -> CheckpointError:
    """A CheckpointError that says ``what`` failed and why, keeping the OSError's errno."""
    tail = " The file that was there before (if any) is unchanged." if what.startswith("ag.save") else ""
    error = CheckpointError(f"{what}: {err.strerror or err}{advice.get(err.errno, '')}.{tail}")
    error.errno = err.errno
    return error


def _clear_stale(folder: str, name: str) -> None:
    """Remove temporary files that an earlier save to ``name`` on this host left when its process
    was killed. Only this host's (a shared folder may have writers elsewhere), only where the
    writer's process is gone."""
    if os.name != "posix":
        return  # os.kill(pid, 0) only asks on POSIX; on Windows it would end the process
    prefix = f".{name}.{_HOST}."
    try:
        names = os.listdir(folder)
    except OSError:
        return  # the write below reports a missing or unreadable folder
    for entry in names:
        found = _TEMP_TAIL.fullmatch(entry[len(prefix):]) if entry.startswith(prefix) else None
        if found and not _alive(int(found[1])):
            _remove(os.path.join(folder, entry))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: asks whether the process exists, sends nothing
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but belongs to another user
    return True


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # never there, or already gone: nothing is left behind either way


def _sync_folder(folder: str) -> None:
    """Flush the rename itself to disk, so a power cut cannot undo it (POSIX only)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename is atomic all the same
    finally:
        os.close(fd)


def _encode(obj: Any, key: str, arrays: dict) -> Any:
    """A JSON description of ``obj``; its arrays go into ``arrays`` under unique member names."""
    if isinstance(obj, (Tensor, np.ndarray)) or hasattr(obj, "__cuda_array_interface__"):
        host = obj.numpy() if isinstance(obj, Tensor) else np.asarray(obj.get() if hasattr(obj, "get") else obj)
        if host.dtype == object:
            raise ArgumentTypeError(f"ag.save: {key or 'the object'} is an array of {host.dtype} (Python objects); "
                                    "save numbers only")
        name = key or "tensor"
        while name in arrays or name.startswith("__"):
            name += "_"
        arrays[name] = host
        return {"tensor" if isinstance(obj, Tensor) else "array": name}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise ArgumentTypeError(f"ag.save: dict keys must be str or int, got {type(k).__name__}")
            items.append([k, _encode(v, f"{key}/{k}" if key else str(k), arrays)])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(v, f"{key}/{i}" if key else str(i), arrays) for i, v in enumerate(obj)]}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    raise ArgumentTypeError(f"ag.save: cannot save {key or 'the object'} of type {type(obj).__name__}; save tensors, "
                    "arrays, numbers, strings, and dicts or lists of them (model.state_dict())")


def _decode(node: dict, data: Any, path: str) -> Any:
    from .backends import get_backend
    from .creation import tensor

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
