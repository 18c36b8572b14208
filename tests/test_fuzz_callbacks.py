"""Fuzzing the entry points of resuming and of the checks made before fit's work, with hypothesis:
BackupAndRestore's arguments and backup files (random bytes, truncated, flipped, foreign
checkpoints), ModelCheckpoint's file-name templates, fit's initial_epoch, DataLoader's drop_last.

The property: a result exactly when the input is valid, else one of our errors (an
``ag.AutogradError`` and the matching built-in) naming what is wrong; never a raw KeyError,
ValueError or IndexError from inside.

Bounded: derandomized, a few seconds in all. AUTOGRAD_CNN_FUZZ_EXAMPLES=N tries N fresh random
examples per test instead.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import autograd_cnn as ag  # noqa: E402
from autograd_cnn import data, nn  # noqa: E402

_EXPLORE = int(os.environ.get("AUTOGRAD_CNN_FUZZ_EXAMPLES", "0"))
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True),
                     st.text(max_size=6), st.binary(max_size=4), st.just([1, 2]), st.just({"a": 1}),
                     st.just(np.int64(2)), st.just(Path("p")))


def fuzz(examples: int) -> Any:
    return settings(max_examples=_EXPLORE or examples, deadline=None, derandomize=not _EXPLORE, database=None,
                    suppress_health_check=list(HealthCheck))


def _xy(n: int = 12) -> tuple:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 2)).astype("float32"), rng.integers(0, 3, n)


def _model() -> nn.Module:
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3))
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    return model


def _ours(err: BaseException) -> None:
    assert isinstance(err, ag.AutogradError), f"{type(err).__name__}: {err}"
    assert isinstance(err, (ValueError, TypeError, OSError)), type(err).__mro__


@fuzz(150)
@given(backup_dir=st.one_of(ANYTHING, st.just("b")), save_freq=st.one_of(ANYTHING, st.just("epoch")),
       double=st.one_of(ANYTHING, st.booleans()), delete=st.one_of(ANYTHING, st.booleans()))
def test_backup_and_restore_arguments(backup_dir, save_freq, double, delete):
    valid = (isinstance(backup_dir, (str, os.PathLike)) and os.fspath(backup_dir) != "" and save_freq == "epoch"
             and isinstance(double, bool) and isinstance(delete, bool))
    try:
        callback = nn.BackupAndRestore(backup_dir, save_freq=save_freq, double_checkpoint=double,
                                       delete_checkpoint=delete)
    except Exception as err:  # noqa: BLE001 (the property is about which)
        _ours(err)
        assert not valid, f"refused valid arguments: {err}"
        return
    assert valid and callback.save_freq == "epoch"


def _real_backup() -> bytes:
    """The bytes of a backup after one epoch of a three-epoch run stopped by Ctrl-C."""
    model = _model()
    x, y = _xy()

    class Stop(nn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # after the backup: it stays
    with tempfile.TemporaryDirectory() as folder:
        model.fit(x, y, epochs=3, verbose=0, callbacks=[nn.BackupAndRestore(folder), Stop()])
        return Path(folder, nn.BackupAndRestore.FILE).read_bytes()


_REAL = _real_backup()


@st.composite
def backups(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["random", "truncated", "flipped", "foreign", "real"]))
    if kind == "random":
        return draw(st.binary(max_size=64))
    if kind == "truncated":
        return _REAL[:draw(st.integers(0, len(_REAL) - 1))]
    if kind == "flipped":
        at = draw(st.integers(0, len(_REAL) - 1))
        return _REAL[:at] + bytes([_REAL[at] ^ draw(st.integers(1, 255))]) + _REAL[at + 1:]
    if kind == "foreign":  # checkpoints ag.save wrote, of something else
        obj = draw(st.sampled_from([{"epoch": 1}, {"model": {}, "optimizer": None, "epoch": "2", "random": {},
                                                             "history": {}}, [1, 2], ag.tensor([1.0]),
                                    {"model": {"0.weight": np.zeros((3, 3))}, "optimizer": None, "epoch": 1,
                                     "random": {}, "history": {"history": {}, "steps": {}, "epoch": []}}]))
        with tempfile.TemporaryDirectory() as folder:
            ag.save(obj, os.path.join(folder, "f.npz"))
            return Path(folder, "f.npz").read_bytes()
    return _REAL


@fuzz(120)
@given(content=backups())
def test_a_backup_file_restores_or_is_a_checkpoint_error(content):
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, nn.BackupAndRestore.FILE).write_bytes(content)
        callback = nn.BackupAndRestore(folder)
        x, y = _xy()
        try:
            history = _model().fit(x, y, epochs=3, verbose=0, callbacks=[callback])
        except Exception as err:  # noqa: BLE001
            _ours(err)
            assert isinstance(err, ag.CheckpointError) and "BackupAndRestore" in str(err) or \
                "load_state_dict" in str(err), str(err)
            assert content != _REAL, f"the real backup was refused: {err}"
            return
        assert callback.restored_epoch is not None and history.epoch[-1] == 2
        assert not Path(folder, nn.BackupAndRestore.FILE).exists()


TEMPLATE_PARTS = ["ck", "-", "{", "}", "{epoch}", "{epoch:02d}", "{loss:.3f}", "{val_loss}", "{accuracy}",
                  "{acc}", ":", ".3f", "{epoch:s}", "{}", "{0}", "{loss!r}", "{loss.real}", "{loss[0]}", ".npz", "x"]


@fuzz(150)
@given(parts=st.lists(st.sampled_from(TEMPLATE_PARTS), min_size=1, max_size=6), validation=st.booleans())
def test_checkpoint_templates_are_filled_or_refused_before_the_first_epoch(parts, validation):
    template = "".join(parts)
    with tempfile.TemporaryDirectory() as folder:
        x, y = _xy()
        checkpoint = nn.ModelCheckpoint(os.path.join(folder, template), monitor="loss")
        try:
            _model().fit(x, y, epochs=1, verbose=0, validation_data=(x, y) if validation else None,
                         callbacks=[checkpoint])
        except Exception as err:  # noqa: BLE001
            _ours(err)
            assert str(err).startswith("ModelCheckpoint: the file name"), str(err)
            assert not os.listdir(folder)  # refused before the first epoch wrote anything
            return
        assert len(os.listdir(folder)) == 1 or "/" in template


@fuzz(100)
@given(initial=ANYTHING, epochs=st.integers(1, 3))
def test_initial_epoch(initial, epochs):
    x, y = _xy()
    valid = type(initial) in (int, np.int64) and initial >= 0
    try:
        history = _model().fit(x, y, epochs=epochs, initial_epoch=initial, verbose=0)
    except Exception as err:  # noqa: BLE001
        _ours(err)
        assert "initial_epoch" in str(err) and not valid
        return
    assert valid and history.epoch == list(range(int(initial), epochs))


@fuzz(120)
@given(n=st.integers(1, 12), batch_size=st.integers(1, 16), drop_last=st.booleans(), shuffle=st.booleans())
def test_drop_last_yields_a_batch_or_is_refused(n, batch_size, drop_last, shuffle):
    x, y = _xy(n)
    try:
        loader = data.DataLoader(x, y, batch_size=batch_size, drop_last=drop_last, shuffle=shuffle)
    except Exception as err:  # noqa: BLE001
        _ours(err)
        assert drop_last and batch_size > n and "drop_last" in str(err)
        return
    batches = list(loader)
    assert len(batches) == len(loader) >= 1
    assert sum(len(b[0]) for b in batches) == (n // batch_size * batch_size if drop_last else n)


def test_a_checkpoint_whose_array_header_is_damaged_is_a_checkpoint_error(tmp_path):
    """Found by the backup fuzzing: NumPy's parser of a damaged .npy header raised tokenize's TokenError."""
    ag.save({"w": np.zeros((3000, 2), "float32")}, tmp_path / "c.npz")  # larger than one read: no CRC check yet
    raw = (tmp_path / "c.npz").read_bytes()
    assert raw.count(b"'shape': (3000, 2), }") == 1
    (tmp_path / "c.npz").write_bytes(raw.replace(b"'shape': (3000, 2), }", b"'shape': ((3000, 2, }"))  # left open
    with pytest.raises(ag.CheckpointError, match="is not a checkpoint or is truncated"):
        ag.load(tmp_path / "c.npz")
