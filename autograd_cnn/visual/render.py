"""Running Graphviz's ``dot``: always with a timeout, and with errors that say what to do.

Every picture the package lays out goes through ``run_dot``, so no notebook cell can hang on a
layout: past ``timeout`` seconds the ``dot`` process is killed and a ``RenderError`` says how to
draw less. Without ``dot`` the error says how to install it, and that ``format="html"`` renders
in the browser instead.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from ..errors import ArgumentError, ArgumentTypeError, AutogradError

FORMATS = ("svg", "png", "pdf", "dot", "html")  # what visual.save writes
DOT_FORMATS = ("svg", "png", "pdf")  # what needs the dot program
TIMEOUT = 60.0  # seconds; AUTOGRAD_CNN_RENDER_TIMEOUT or timeout= changes it

INSTALL_HINT = ("Install Graphviz so that `dot -V` works: `sudo apt-get install graphviz` (Debian, Ubuntu), "
                "`brew install graphviz` (macOS) or `conda install -c conda-forge graphviz`. Without it, "
                "visual.save(..., format=\"html\") draws in the browser, and format=\"dot\" (or draw(...).source) "
                "gives the DOT text.")


class RenderError(AutogradError, RuntimeError):
    """A picture could not be rendered (Graphviz's ``dot`` is missing, failed or took too long)."""


def default_timeout() -> float:
    """``AUTOGRAD_CNN_RENDER_TIMEOUT`` in seconds where set, else ``TIMEOUT``."""
    value = os.environ.get("AUTOGRAD_CNN_RENDER_TIMEOUT")
    if not value:
        return TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise RenderError(f"AUTOGRAD_CNN_RENDER_TIMEOUT={value!r}: expected a number of seconds above 0")
    return seconds


def have_dot() -> bool:
    """True where Graphviz's ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


def run_dot(source: str, format: str, timeout: float | None = None, what: str = "visual") -> bytes:
    """``dot -T<format>`` on ``source``; RenderError when dot is missing, fails or runs past ``timeout``."""
    if format not in DOT_FORMATS:
        raise ArgumentError(f"{what}: dot renders {DOT_FORMATS}, got format={format!r}")
    exe = shutil.which("dot")
    if exe is None:
        raise RenderError(f"{what}: Graphviz's `dot` program is not on PATH, so {format} cannot be drawn. "
                          f"{INSTALL_HINT}")
    timeout = default_timeout() if timeout is None else timeout
    nodes = source.count("[label=")
    try:
        done = subprocess.run([exe, f"-T{format}"], input=source.encode("utf-8"), capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:  # subprocess.run has killed dot and waited for it
        raise RenderError(
            f"{what}: Graphviz's dot took longer than {timeout:g} s to lay out about {nodes:,} nodes and was "
            "stopped. Draw less (fold=True, the default, folds big graphs; collapse=\"module\" draws one node "
            "per layer; kind=\"forward\" draws half), or allow more time with timeout=...") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise RenderError(f"{what}: Graphviz's dot failed (exit status {done.returncode}) on a picture of "
                          f"about {nodes:,} nodes: {' '.join(message) or 'no message'}")
    return done.stdout


def write_file(path: str, data: bytes) -> None:
    """Write a picture's bytes to ``path``, making its folder first."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def file_path(what: str, name: str, path: Any) -> str:
    """``path`` (text or a ``pathlib.Path``) as a string; anything else an error naming ``what``."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ArgumentTypeError(f"{what}: {name} must be a file or folder name (a str or a pathlib.Path), "
                                f"got {path!r:.60}")
    return os.fspath(path)


def check_format(path: str, format: str | None, what: str = "visual.save") -> tuple[str, str]:
    """The file format (from ``format``, else from the path's suffix) and the path to write.

    A path without a suffix gets the format's (``out/graph`` becomes ``out/graph.svg``); a suffix
    that is no known format, or that disagrees with ``format``, is an error naming the formats.
    """
    path = file_path(what, "path", path)
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        raise ArgumentError(f"{what}: {path!r} is a folder; give the file to write, e.g. "
                            f"{os.path.join(path, 'graph.svg')!r}")
    stem, dot_suffix = os.path.splitext(path)
    suffix = dot_suffix.lstrip(".").lower()
    if format is not None and format not in FORMATS:
        raise ArgumentError(f"{what}: format must be one of {FORMATS}, got format={format!r}")
    if suffix and suffix not in FORMATS:
        raise ArgumentError(f"{what}: cannot tell the format of {path!r}: the suffix .{suffix} is none of "
                            f"{', '.join('.' + f for f in FORMATS)}; name the file with one of them or pass format=")
    if format is None:
        return suffix or "svg", path if suffix else f"{path}.svg"
    if suffix and suffix != format:
        raise ArgumentError(f"{what}: the path {path!r} ends in .{suffix} but format={format!r}; make them agree")
    return format, path if suffix else f"{path}.{format}"
