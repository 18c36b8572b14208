"""ag.save / ag.load and Module.save: round trips, atomic writes, clear errors on bad files."""
from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import nn, serialization
from autograd_cnn.serialization import CheckpointError


def _model():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))


def test_model_round_trip(tmp_path, backend):
    ag.manual_seed(1)
    a = _model()
    a(ag.randn(2, 1, 4, 4))  # move the running statistics off their start
    path = tmp_path / "model.npz"
    a.save(path)
    state = ag.load(path)
    assert list(state) == list(a.state_dict())
    assert all(isinstance(v, ag.Tensor) and v.backend == backend for v in state.values())
    ag.manual_seed(2)
    b = _model()
    b.load_state_dict(state)
    x = ag.randn(3, 1, 4, 4)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    # numpy can read the arrays too, by their state-dict names
    with np.load(path) as raw:
        np.testing.assert_array_equal(raw["0.weight"], a[0].weight.numpy())


def test_tensor_and_nested_round_trip(tmp_path):
    t = ag.tensor(np.arange(6, dtype="float64").reshape(2, 3))
    ag.save(t, tmp_path / "t.npz")
    back = ag.load(tmp_path / "t.npz")
    assert isinstance(back, ag.Tensor) and back.dtype == np.float64
    np.testing.assert_array_equal(back.numpy(), t.numpy())
    obj = {"epoch": 3, "lr": 0.5, "name": "cnn", "state": {0: {"buf": np.ones(2)}}, "betas": (0.9, 0.99),
           "labels": ag.tensor([1, 2, 3])}
    ag.save(obj, tmp_path / "n.npz")
    back = ag.load(tmp_path / "n.npz")
    assert back["epoch"] == 3 and back["lr"] == 0.5 and back["name"] == "cnn" and back["betas"] == (0.9, 0.99)
    assert isinstance(back["state"][0]["buf"], np.ndarray) and back["labels"].dtype.kind == "i"


def test_corrupt_and_truncated_files_are_clear_errors(tmp_path):
    path = tmp_path / "m.npz"
    _model().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"m\.npz is not a checkpoint or is truncated"):
        ag.load(path)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.npz"):
        ag.load(junk)


def test_foreign_files_are_named(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(CheckpointError, match=r"plain\.npz is a \.npz file that ag\.save did not write"):
        ag.load(tmp_path / "plain.npz")
    np.save(tmp_path / "single.npy", np.ones(2))
    with pytest.raises(CheckpointError, match="single NumPy array"):
        ag.load(tmp_path / "single.npy")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        ag.load(tmp_path / "missing.npz")


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "new.npz"
    np.savez(path, __format__=np.array("autograd_cnn checkpoint"), __version__=np.array(99),
             __structure__=np.array("{}"))
    with pytest.raises(CheckpointError, match="format 99, newer"):
        ag.load(path)


def test_missing_and_misshaped_keys_name_the_entry(tmp_path):
    path = tmp_path / "m.npz"
    model = _model()
    state = model.state_dict()
    ag.save({k: v for k, v in state.items() if k != "1.running_var"}, path)
    with pytest.raises(CheckpointError, match=r"missing 1\.running_var"):
        model.load_state_dict(ag.load(path))
    ag.save({**state, "3.bias": ag.zeros(4)}, path)
    with pytest.raises(CheckpointError, match=r"'3\.bias' has shape \(4\), the model's \(3\)"):
        model.load_state_dict(ag.load(path))


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    model = _model()
    model.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["m.npz"]  # and no temporary file is left behind
    assert zipfile.is_zipfile(path)


def test_unsaveable_objects_are_refused(tmp_path):
    with pytest.raises(TypeError, match="cannot save"):
        ag.save({"f": lambda: 0}, tmp_path / "x.npz")


# --------------------------------------------------------------------------- nothing lost, nothing left behind


@pytest.mark.parametrize("content, what", [
    (b"hello world\n" * 10, "text"),
    (bytes(range(256)) * 4, "random bytes"),
    (b"", "an empty file"),
])
def test_a_file_that_is_no_checkpoint_says_so_and_not_allow_pickle(tmp_path, content, what):
    path = tmp_path / "notes.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        ag.load(path)
    message = str(info.value)
    assert str(path) in message and "not a checkpoint" in message, message
    assert "pickle" not in message, f"{what}: {message}"  # never a hint to load it unsafely
    assert isinstance(info.value, ag.AutogradError) and isinstance(info.value, ValueError)


def test_a_truncated_checkpoint_says_so(tmp_path):
    path = tmp_path / "m.npz"
    ag.save({"w": ag.ones(1000)}, path)
    whole = path.read_bytes()
    for cut in (10, len(whole) // 2, len(whole) - 30):
        path.write_bytes(whole[:cut])
        with pytest.raises(CheckpointError, match=r"m\.npz is not a checkpoint or is truncated"):
            ag.load(path)


def test_a_folder_or_an_unreadable_file_says_what_it_is(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="is a folder"):
        ag.load(tmp_path)
    path = tmp_path / "m.npz"
    ag.save({"w": ag.ones(3)}, path)

    def refused(*args, **kwargs):  # what open() does without read permission (root may read anything)
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(serialization, "open", refused, raising=False)
    with pytest.raises(CheckpointError, match=r"cannot read .*m\.npz: Permission denied") as info:
        ag.load(path)
    assert info.value.errno == errno.EACCES and "truncated" not in str(info.value)


def test_saved_file_has_the_permissions_of_an_ordinary_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        ag.save({"w": ag.ones(3)}, tmp_path / "a.npz")
        os.umask(0o077)
        ag.save({"w": ag.ones(3)}, tmp_path / "b.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.npz").stat().st_mode & 0o777 == 0o600


def test_an_error_names_the_target_not_the_temporary_file(tmp_path):
    target = tmp_path / "no-such-folder" / "m.npz"
    with pytest.raises(CheckpointError) as info:
        ag.save({"w": ag.ones(3)}, target)
    message = str(info.value)
    assert str(target) in message and ".tmp" not in message, message
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOENT


def test_a_failed_write_leaves_no_temporary_file_and_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    ag.save({"w": ag.ones(3)}, path)
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(CheckpointError) as info:
        ag.save({"w": ag.zeros(3)}, path)
    assert str(path) in str(info.value) and "No space left on device" in str(info.value)
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


def test_stale_temporary_files_of_dead_writers_are_cleared_and_no_others(tmp_path):
    path = tmp_path / "m.npz"
    host = socket.gethostname()
    dead = tmp_path / f".m.npz.{host}.{_dead_pid()}.abc123.tmp"
    alive = tmp_path / f".m.npz.{host}.{os.getpid()}.def456.tmp"  # a save running now, in this process
    elsewhere = tmp_path / f".m.npz.another-host.{_dead_pid()}.ghi789.tmp"  # a writer on another machine
    other_target = tmp_path / f".n.npz.{host}.{_dead_pid()}.jkl012.tmp"  # another checkpoint's
    foreign = tmp_path / ".m.npz.notes.tmp"  # not ours at all
    for f in (dead, alive, elsewhere, other_target, foreign):
        f.write_bytes(b"partial")
    ag.save({"w": ag.ones(3)}, path)
    assert not dead.exists()
    assert alive.exists() and elsewhere.exists() and other_target.exists() and foreign.exists()
    assert ag.load(path)["w"].shape == (3,)


@pytest.mark.parametrize("field, what", [(6, "the zip version it needs"), (10, "its compression method")])
def test_a_damaged_zip_header_is_a_checkpoint_error(tmp_path, field, what):
    # zipfile raises NotImplementedError for a version or a compression method it does not know.
    path = tmp_path / "m.npz"
    ag.save({"w": ag.ones(3)}, path)
    raw = bytearray(path.read_bytes())
    entry = raw.index(b"PK\x01\x02")  # the first member's entry in the central directory
    raw[entry + field:entry + field + 2] = b"\xff\x7f"
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"m\.npz is not a checkpoint or is truncated"):
        ag.load(path)


def test_an_interrupt_during_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    ag.save({"w": ag.ones(3)}, path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):  # passed on as it is, not turned into an error of ours
        ag.save({"w": ag.zeros(3)}, path)
    assert os.listdir(tmp_path) == ["m.npz"] and ag.load(path)["w"].tolist() == [1.0, 1.0, 1.0]
