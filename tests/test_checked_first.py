"""Settings and paths are checked before the work that needs them: the download folder, the
thread count, ModelCheckpoint's file name, a DataLoader that would yield nothing."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import NUMBA_OK

import autograd_cnn as ag
from autograd_cnn import data, nn
from autograd_cnn.backends.threads import usable_cores

# --------------------------------------------------------------------------- the download folder


@pytest.mark.parametrize("variable", ["XDG_CACHE_HOME", "HOME"])
def test_a_cache_folder_that_is_a_file_is_a_data_error_naming_it(offline, monkeypatch, variable):
    a_file = offline / "a-file"
    a_file.write_text("not a folder")
    if variable == "HOME":
        monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv(variable, str(a_file))
    with pytest.raises(data.DataError, match=rf"{a_file} is a file, not a folder \(from {variable}={a_file}\); "
                                             r"set XDG_CACHE_HOME to a folder you can write to, or "
                                             r"AUTOGRAD_CNN_DATA to a folder that holds the data files"):
        data.load_mnist(progress=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(offline / "cache"))  # a folder: the download is tried (and fails)
    with pytest.raises(data.DataError, match="could not find"):
        data.load_mnist(progress=False)


# --------------------------------------------------------------------------- AUTOGRAD_CNN_THREADS


def _import_with_threads(value: str, *code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AUTOGRAD_CNN_THREADS": value}
    return subprocess.run([sys.executable, *code], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", " ", "+2"])
def test_a_thread_count_that_is_no_positive_whole_number_is_refused(value):
    done = _import_with_threads(value, "-c", "import autograd_cnn")
    if not value.strip():  # blank: as if unset
        assert done.returncode == 0, done.stderr
        return
    assert done.returncode == 1
    assert f"ArgumentError: AUTOGRAD_CNN_THREADS={value.strip()!r}: give the number of threads the CPU kernels " \
           "may use, a whole number of at least 1" in done.stderr
    info = _import_with_threads(value, "-m", "autograd_cnn", "info")  # info still runs and names it
    assert info.returncode == 0 and f"AUTOGRAD_CNN_THREADS={value!r}" in info.stdout
    train = _import_with_threads(value, "-m", "autograd_cnn", "train")  # the others refuse in one line
    assert train.returncode == 1
    assert train.stderr.startswith(f"autograd-cnn train: AUTOGRAD_CNN_THREADS={value!r}")


def test_a_thread_count_above_the_cores_is_cut_to_them_with_a_warning():
    code = "import autograd_cnn as ag; print(ag.get_backend().threads)"
    done = _import_with_threads("999", "-c", code)
    assert done.returncode == 0, done.stderr
    cores = usable_cores()
    assert f"AUTOGRAD_CNN_THREADS=999 is more than the {cores} cores this process may run on; the CPU kernels " \
           f"use {cores} threads" in done.stderr
    if NUMBA_OK and ag.get_backend("numba").blas is not None:  # the worker threads are numba's; the plain
        assert done.stdout.strip() == str(cores)                # numpy backend and one without OpenBLAS: one
    one = _import_with_threads("1", "-W", "error", "-c", code)
    assert one.returncode == 0 and one.stdout.strip() == "1"


# --------------------------------------------------------------------------- ModelCheckpoint


def _model():
    model = nn.Sequential(nn.Linear(2, 3))
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    return model


def _xy(n=32):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 2)).astype("float32"), rng.integers(0, 3, n)


class _Epochs(nn.Callback):
    started = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.started += 1


@pytest.mark.parametrize("template, message", [
    ("ck-{val_loss:.3f}.npz", r"uses \{val_loss\}, which this fit does not log; it logs epoch, loss, accuracy; "
                              r"pass validation_data to fit for the 'val_' figures"),
    ("ck-{acc}.npz", r"uses \{acc\}, which this fit does not log; it logs epoch, loss, accuracy$"),
    ("ck-{epoch:s}.npz", r"is not a template fit can fill \(.*\); write fields as \{epoch:02d\}"),
    ("ck-{}.npz", r"is not a template fit can fill"),
])
def test_a_checkpoint_name_is_checked_against_the_logs_before_the_first_epoch(tmp_path, template, message):
    model = _model()
    x, y = _xy()
    epochs = _Epochs()
    checkpoint = nn.ModelCheckpoint(str(tmp_path / template), monitor="loss")
    with pytest.raises(ag.ArgumentError, match=message):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[checkpoint, epochs])
    assert epochs.started == 0 and not list(tmp_path.iterdir())
    assert model.training  # left as it was


def test_a_checkpoint_name_with_the_logged_figures_is_filled(tmp_path):
    model = _model()
    x, y = _xy()
    checkpoint = nn.ModelCheckpoint(str(tmp_path / "ck-{epoch:02d}-{val_loss:.3f}-{accuracy:.2f}.npz"))
    model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y), callbacks=[checkpoint])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and names[0].startswith("ck-01-") and names[1].startswith("ck-02-")
    assert checkpoint.params["metrics"] == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert checkpoint.params["epochs"] == 2 and checkpoint.params["steps"] == 1


# --------------------------------------------------------------------------- DataLoader


def test_drop_last_that_leaves_no_batch_is_refused():
    x, y = _xy(10)
    with pytest.raises(ag.ArgumentError, match=r"DataLoader: drop_last=True leaves no batch: x holds 10 samples, "
                                               r"fewer than batch_size=64; use a batch_size of at most 10 or "
                                               r"drop_last=False"):
        data.DataLoader(x, y, batch_size=64, drop_last=True)
    assert len(data.DataLoader(x, y, batch_size=10, drop_last=True)) == 1
    assert len(data.DataLoader(x, y, batch_size=64)) == 1  # the one short batch
