"""The backend registry: AUTOGRAD_CNN_BACKEND, set_backend, use_backend, get_backend.

The variable is read once, at import, to choose the default backend for new tensors;
ops follow the backend of their inputs. This module imports the backend classes (Numba's and
CuPy's on first use, so neither library is imported with the package) and holds one instance
of each; they never import it.

Unset, the default is the fastest CPU backend installed: ``numba`` where Numba can be found,
else ``numpy``. It is loaded when the first tensor needs it.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import ArgumentError, BackendError
from .base import Backend
from .numpy_backend import NumpyBackend
from .threads import thread_count

ENV_VAR = "AUTOGRAD_CNN_BACKEND"
GPU_INSTALL_HINT = "pip install 'autograd-cnn[gpu]'"

FAST_INSTALL_HINT = "pip install 'autograd-cnn[fast]'"

# Every spelling a user may type, mapped to the backend's one name ("cpu": the fastest CPU
# backend installed; "auto": CuPy with a GPU, else that).
ALIASES = {"numpy": "numpy", "np": "numpy", "numba": "numba", "cpu": "cpu",
           "cupy": "cupy", "gpu": "cupy", "cuda": "cupy", "auto": "auto"}

_instances: dict[str, Backend] = {"numpy": NumpyBackend.instance()}
# The default backend, or the name of one not loaded yet: unset, "cpu" loads Numba only when
# the first tensor asks for the default.
_default: Backend | str = "cpu"
_cpu_threads: int | None = None  # set_cpu_threads's count, for a CPU backend loaded after it
#: What is wrong with AUTOGRAD_CNN_BACKEND or AUTOGRAD_CNN_THREADS, when the ``autograd-cnn`` command
#: imported the package (its --help and info must still work, and info tells it); any other import
#: raises instead.
env_problem: str | None = None


def _load_cupy() -> Backend:
    """Import CuPy on first use only, so `import autograd_cnn` stays light."""
    if "cupy" not in _instances:
        from .cupy_backend import CupyBackend  # imports cupy; raises BackendError if unusable

        _instances["cupy"] = CupyBackend.instance()
    return _instances["cupy"]


def _load_numba() -> Backend:
    """Import Numba on first use only (half a second), so `import autograd_cnn` stays light."""
    if "numba" not in _instances:
        from .numba_backend import NumbaBackend  # imports numba; raises BackendError if missing

        _instances["numba"] = NumbaBackend.instance()
        if _cpu_threads is not None:
            _instances["numba"].set_threads(_cpu_threads)
    return _instances["numba"]


def set_cpu_threads(count: int) -> None:
    """Run the CPU backends' kernels on ``count`` threads: those loaded now and those loaded later
    (under mpiexec the processes of one machine share its cores; see distributed.world)."""
    global _cpu_threads
    _cpu_threads = count
    for backend in _instances.values():
        if hasattr(backend, "set_threads"):  # numba's worker threads (numpy runs on the caller's)
            backend.set_threads(count)


def numba_installed() -> bool:
    """Whether Numba can be imported (found, not imported: that takes half a second)."""
    return "numba" in _instances or importlib.util.find_spec("numba") is not None


def _fastest_cpu() -> Backend:
    """numba where Numba is installed and loads, else numpy."""
    if numba_installed():
        try:
            return _load_numba()
        except BackendError:
            pass  # Numba found but broken: the reference backend still works
    return _instances["numpy"]


def cupy_usable() -> tuple[bool, str]:
    """(True, "") where CuPy imports and sees a GPU, else (False, the reason)."""
    try:
        _load_cupy()
    except BackendError as err:
        return False, str(err)
    return True, ""


def _resolve(name: str, source: str) -> Backend:
    key = ALIASES.get(str(name).strip().lower())
    if key is None:
        raise BackendError(
            f"{source}: unknown backend {name!r}. Choose one of: numpy, numba, cpu (the fastest "
            f"CPU backend installed), cupy (or gpu, cuda), auto.")
    if key == "numpy":
        return _instances["numpy"]
    if key == "cpu":
        return _fastest_cpu()
    if key == "auto":
        ok, _ = cupy_usable()
        return _instances["cupy"] if ok else _fastest_cpu()
    try:
        return _load_numba() if key == "numba" else _load_cupy()
    except BackendError as err:
        raise BackendError(f"{source}: backend {name!r} cannot be used: {err}") from None


def get_backend(name: str | Backend | None = None) -> Backend:
    """The backend called ``name``, or the current default when ``name`` is None."""
    if name is None:
        return _current()
    if isinstance(name, Backend):
        return name
    return _resolve(name, "get_backend")


def _current() -> Backend:
    """The default backend, loaded now if it is still a name."""
    global _default
    if not isinstance(_default, Backend):
        _default = _resolve(_default, ENV_VAR)
    return _default


def set_backend(name: str | Backend) -> Backend:
    """Make ``name`` the default backend for new tensors; returns it."""
    global _default
    _default = name if isinstance(name, Backend) else _resolve(name, "set_backend")
    return _default


@contextmanager
def use_backend(name: str | Backend) -> Iterator[Backend]:
    """``with ag.use_backend("cupy"):`` new tensors go to that backend inside the block."""
    global _default
    previous = _default
    set_backend(name)
    try:
        yield _current()
    finally:
        _default = previous


def available_backends() -> list[str]:
    """Names of the backends that work on this machine (numpy always)."""
    names = ["numpy"]
    if numba_installed():
        try:
            _load_numba()
            names.append("numba")
        except BackendError:
            pass
    if cupy_usable()[0]:
        names.append("cupy")
    return names


def backend_of(array: Any) -> Backend:
    """The backend whose array type ``array`` is (numpy for a NumPy array: numba holds the same)."""
    numpy_backend = _instances["numpy"]
    if numpy_backend.is_array(array):
        return numpy_backend
    cupy_backend = _instances.get("cupy")
    if cupy_backend is not None and cupy_backend.is_array(array):
        return cupy_backend
    if type(array).__module__.startswith("cupy"):
        return _load_cupy()
    raise BackendError(f"no backend holds arrays of type {type(array).__name__}")


def all_loaded() -> list[Backend]:
    """Backends instantiated so far (manual_seed seeds each of them)."""
    return list(_instances.values())


def _init_from_env() -> None:
    global env_problem
    try:
        thread_count()  # AUTOGRAD_CNN_THREADS, checked at import whichever backend reads it later
    except ArgumentError as err:
        if not _command_line_starting():
            raise
        env_problem = str(err)
    value = os.environ.get(ENV_VAR)
    if value is None or value.strip() == "":
        return
    try:
        set_backend(_resolve(value, f"{ENV_VAR}={value}"))
    except BackendError as err:
        if not _command_line_starting():
            raise
        env_problem = str(err)  # the command refuses to run anything but --help and info


def _command_line_starting() -> bool:
    """True while ``autograd-cnn`` or ``python -m autograd_cnn`` imports the package."""
    if not sys.argv:
        return False
    if os.path.basename(sys.argv[0]).split(".")[0] in ("autograd-cnn", "autograd-cnn-script"):
        return True
    # Python sets argv[0] to "-m" while it finds the module that -m names; the name follows -m.
    argv = getattr(sys, "orig_argv", [])
    return sys.argv[0] == "-m" and "-m" in argv and argv[argv.index("-m") + 1:][:1] == ["autograd_cnn"]


_init_from_env()
