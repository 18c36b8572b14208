"""ag.save / ag.load and Module.save: round trips, atomic writes, clear errors on bad files."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import nn
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
    with pytest.raises(CheckpointError, match=r"m\.npz is not a readable checkpoint"):
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
