"""The command line's files: every path and format checked before the work, every file written
whole (under a temporary name beside it, renamed over it when complete), so that neither a
mistake found late nor Ctrl-C costs a file that was there."""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The paths each command reads or writes: (option, attribute, kind), kind "file" or "folder" to
# write, "input" to read. All are checked before any work, so a bad one does not lose a run.
PATHS = {
    "train": [("--save", "save", "file"), ("--resume", "resume", "folder")],
    "demo": [("--out", "out", "folder")],
    "graph": [("--script", "script", "input"), ("--out", "out", "file"), ("--frames", "frames", "folder")],
    "export": [("--weights", "weights", "input"), ("--out", "out", "file")],
}


def path_problem(path: str, kind: str) -> str | None:
    """Why ``path`` cannot be read ("input") or written ("file", "folder"), or None.

    Writing is tried for real: a file is made and removed in the nearest folder that exists
    (the missing ones are made at the end, as saving does). So permissions, a read-only disk,
    or a file where a folder should be are found, whoever runs it (root ignores permission bits).
    """
    target = Path(path)
    if kind == "input":
        return None if target.is_file() else ("is a folder, not a file" if target.is_dir() else "no such file")
    if kind == "file" and target.is_dir():
        return f"is a folder; give a file name in it, such as {target / ('model' + (target.suffix or '.npz'))}"
    folder = target if kind == "folder" else target.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=".autograd-cnn-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return f"cannot write in {existing}: {err.strerror or err}"
    return None


def format_problem(command: str, args: argparse.Namespace) -> tuple[str, str] | None:
    """(option, why) where an output's name and format disagree or name no format the command
    writes; None when they are fine. Checked before any work, as the paths are."""
    if command == "graph":
        from .visual.render import FORMATS

        suffix = Path(args.out).suffix.lstrip(".").lower()
        if suffix and suffix not in FORMATS:
            return "--out", (f".{suffix} is no format graph writes; end the name in "
                             f"{', '.join('.' + f for f in FORMATS)}")
        if suffix and args.format and suffix != args.format:
            return "--out", f"the name ends in .{suffix} but --format is {args.format}; make them agree"
    suffixes = {"train": ("save", ".npz", "the weights are written as a .npz file"),
                "export": ("out", ".onnx", "the model is written as ONNX")}
    if command in suffixes:
        attribute, suffix, what = suffixes[command]
        path = getattr(args, attribute)
        if path is not None and Path(path).suffix.lower() != suffix:
            return f"--{attribute}", (f"the file name must end in {suffix} ({what}), "
                                      f"e.g. {Path(path).with_suffix(suffix)}")
    return None


@contextmanager
def written_whole(path: str) -> Iterator[str]:
    """A temporary name beside ``path`` for the block to write to, renamed over ``path`` when the
    block ends well, removed otherwise (an error, Ctrl-C): ``path`` keeps its old file or gets the
    whole new one, never a part. The temporary name keeps the suffix (writers read the format from it)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent)
    os.close(fd)
    try:
        yield part
        os.chmod(part, 0o666 & ~_umask())  # a temporary file is private; the result is as any new file
        os.replace(part, target)
    finally:
        Path(part).unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


@contextmanager
def folder_written_whole(path: str) -> Iterator[str]:
    """As ``written_whole`` for a folder of files: written beside it, then swapped in for the old one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        yield part
        os.chmod(part, 0o777 & ~_umask())
        old = None
        if target.exists():
            old = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            os.replace(target, Path(old) / target.name)
        os.replace(part, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(part, ignore_errors=True)


def interrupted_name(path: str) -> str:
    """Where the part-trained weights of an interrupted run go: ``keep.npz`` -> ``keep.interrupted.npz``."""
    target = Path(path)
    return str(target.with_name(f"{target.stem}.interrupted{target.suffix or '.npz'}"))
