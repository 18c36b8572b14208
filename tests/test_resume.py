"""Resuming: nn.BackupAndRestore brings a killed or interrupted run back where it stopped, and the
run ends with the weights of one that never stopped; fit(initial_epoch=), model.optimizer,
and ``autograd-cnn train --resume``. The runs that stop are real processes, killed for real."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_distributed import _env, mpiexec, needs_mpi

import autograd_cnn as ag
from autograd_cnn import nn, optim, serialization

ROOT = Path(__file__).resolve().parents[1]

# A run as a user writes it: seed, build, compile, fit with the backup. STOP="epoch,step,signal" makes
# it stop itself after that step: SIGKILL (kill -9) or SIGINT (Ctrl-C).
SCRIPT = '''
import os, signal, sys
import numpy as np
import autograd_cnn as ag
from autograd_cnn import nn
from autograd_cnn.distributed import world

backup, out = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
y = rng.integers(0, 3, 90)
x = (np.eye(3)[y] @ rng.standard_normal((3, 4)) + 0.8 * rng.standard_normal((90, 4))).astype("float32")
ag.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3), nn.Softmax())
model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])


class Stop(nn.Callback):
    def __init__(self, epoch, step, how):
        self.at, self.how = (epoch, step), getattr(signal, how)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), self.how)


stop = os.environ.get("STOP")
callbacks = [nn.BackupAndRestore(backup)] + ([Stop(int(stop.split(",")[0]), int(stop.split(",")[1]),
                                                    stop.split(",")[2])] if stop else [])
history = model.fit(x, y, epochs=5, batch_size=16, verbose=0, validation_data=(x[:30], y[:30]), callbacks=callbacks)
if world.is_main():
    ag.save({"weights": model.state_dict(), "optimizer": model.optimizer.state_dict(), "history": history.history,
             "epochs": history.epoch, "interrupted": history.interrupted}, out)
'''


def _run(tmp_path: Path, out: str, stop: str | None = None) -> subprocess.CompletedProcess:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("STOP", None)
    if stop:
        env["STOP"] = stop
    # subprocess.run ends the child by its own pid if it runs past the timeout
    return subprocess.run([sys.executable, str(script), str(tmp_path / "backup"), str(tmp_path / out)],
                          capture_output=True, text=True, env=env, timeout=180)


def _same(a: dict, b: dict) -> None:
    for name in a["weights"]:
        assert np.array_equal(a["weights"][name].numpy(), b["weights"][name].numpy()), name  # bitwise
    for i, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            assert np.array_equal(np.asarray(value), np.asarray(b["optimizer"]["state"][i][key])), (i, key)
    assert a["history"] == b["history"] and a["epochs"] == b["epochs"] == [0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    done = _run(tmp_path, "ref.npz")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "backup").exists()  # removed when training ended
    return ag.load(tmp_path / "ref.npz")


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_a_killed_or_interrupted_run_resumes_to_the_same_weights(tmp_path, uninterrupted, how):
    stopped = _run(tmp_path, "stopped.npz", stop=f"2,3,{how}")  # in the third epoch
    if how == "SIGKILL":
        assert stopped.returncode == -signal.SIGKILL
    else:  # Ctrl-C: fit finishes the step, returns the History so far; the backup stays
        assert stopped.returncode == 0, stopped.stderr[-3000:]
        partial = ag.load(tmp_path / "stopped.npz")
        assert partial["interrupted"] and partial["epochs"] == [0, 1]
    backup = ag.load(tmp_path / "backup" / nn.BackupAndRestore.FILE)
    assert backup["epoch"] == 2 and backup["history"]["epoch"] == [0, 1]
    resumed = _run(tmp_path, "resumed.npz")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _same(ag.load(tmp_path / "resumed.npz"), uninterrupted)
    assert not (tmp_path / "backup").exists()


@needs_mpi
def test_under_mpiexec_rank_0_writes_and_every_rank_restores(tmp_path):
    """Two processes, data-parallel: Ctrl-C in the third epoch, the same mpiexec again, and the
    weights of an uninterrupted mpiexec run, bitwise."""
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)

    def job(out: str, backup: str, **env: str) -> None:
        code, _, err, _ = mpiexec(2, str(script), str(tmp_path / backup), str(tmp_path / out), env=_env(**env))
        assert code == 0, err[-3000:]

    job("ref.npz", "ref-backup")
    job("stopped.npz", "backup", STOP="2,1,SIGINT")  # 3 steps an epoch per process
    assert ag.load(tmp_path / "stopped.npz")["epochs"] == [0, 1]
    assert os.listdir(tmp_path / "backup") == [nn.BackupAndRestore.FILE]  # one writer: rank 0
    job("resumed.npz", "backup")
    resumed, reference = ag.load(tmp_path / "resumed.npz"), ag.load(tmp_path / "ref.npz")
    _same(resumed, reference)
    assert not (tmp_path / "backup").exists() and not (tmp_path / "ref-backup").exists()


def _blobs(n=64):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, n)
    return (np.eye(3)[y] * 2 + rng.standard_normal((n, 3))).astype("float32"), y


def _fit(backup_dir, epochs=3, callbacks=()):
    x, y = _blobs()
    ag.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3))
    model.compile(optim.RMSprop(model.parameters(), lr=0.01), "sparse_categorical_crossentropy", ["accuracy"])
    history = model.fit(x, y, epochs=epochs, batch_size=8, verbose=0,
                        callbacks=[nn.BackupAndRestore(backup_dir), *callbacks])
    return model, history


def test_a_kill_while_the_backup_is_written_leaves_the_previous_one(tmp_path, monkeypatch):
    """The second epoch's backup is cut off half-written (Ctrl-C inside the write): the first
    epoch's stays whole, and the run resumes from it to the weights of a run never stopped."""
    reference, _ = _fit(tmp_path / "ref")
    writes = []
    savez = np.savez

    def cut_off(file, **arrays):
        writes.append(1)
        if len(writes) == 2:
            file.write(b"PK\x03\x04 half a backup")
            raise KeyboardInterrupt
        savez(file, **arrays)
    monkeypatch.setattr(serialization.np, "savez", cut_off)
    _, history = _fit(tmp_path / "backup")
    monkeypatch.undo()
    assert history.interrupted and len(history.epoch) == 2  # stopped inside epoch 2's end
    assert os.listdir(tmp_path / "backup") == [nn.BackupAndRestore.FILE]  # no temporary file left
    assert ag.load(tmp_path / "backup" / nn.BackupAndRestore.FILE)["epoch"] == 1
    resumed, history = _fit(tmp_path / "backup")
    assert history.epoch == [0, 1, 2]
    for a, b in zip(resumed.parameters(), reference.parameters()):
        assert np.array_equal(a.numpy(), b.numpy())
    assert not (tmp_path / "backup").exists()


def test_double_checkpoint_reads_the_one_before_when_the_latest_is_damaged(tmp_path):
    class StopAfter(nn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt  # after both epochs' backups
    x, y = _blobs()
    ag.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 3))
    model.compile("sgd", "sparse_categorical_crossentropy")
    backup = nn.BackupAndRestore(tmp_path, double_checkpoint=True)
    model.fit(x, y, epochs=4, verbose=0, callbacks=[backup, StopAfter()])
    (tmp_path / nn.BackupAndRestore.FILE).write_bytes(b"damaged")
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[backup])
    assert backup.restored_epoch == 1 and history.epoch == [0, 1, 2, 3]
    single = nn.BackupAndRestore(tmp_path / "single")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[single, StopAfter()])
    (tmp_path / "single").mkdir(exist_ok=True)
    (tmp_path / "single" / nn.BackupAndRestore.FILE).write_bytes(b"damaged")
    with pytest.raises(ag.CheckpointError, match=r"BackupAndRestore: the backup in .*single cannot be read .*"
                                                  r"delete the folder to start the run over"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[single])


def test_a_finished_run_removes_its_backup_and_leaves_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    _fit(tmp_path)
    assert os.listdir(tmp_path) == ["notes.txt"]
    kept = nn.BackupAndRestore(tmp_path / "kept", delete_checkpoint=False)
    x, y = _blobs()
    model = nn.Sequential(nn.Linear(3, 3))
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[kept])
    assert ag.load(tmp_path / "kept" / nn.BackupAndRestore.FILE)["epoch"] == 2


@pytest.mark.parametrize("kwargs, error, message", [
    ({"backup_dir": None}, TypeError, "backup_dir must be a folder's path, got None"),
    ({"backup_dir": ""}, TypeError, "backup_dir must be a folder's path"),
    ({"backup_dir": "b", "save_freq": 100}, ValueError, "save_freq must be 'epoch', got 100"),
    ({"backup_dir": "b", "save_freq": "batch"}, ValueError, "save_freq must be 'epoch'"),
    ({"backup_dir": "b", "delete_checkpoint": "yes"}, TypeError, "delete_checkpoint must be True or False"),
    ({"backup_dir": "b", "double_checkpoint": 1}, TypeError, "double_checkpoint must be True or False"),
])
def test_bad_arguments_are_library_errors(kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        nn.BackupAndRestore(**kwargs)
    assert isinstance(info.value, ag.AutogradError)


# --------------------------------------------------------------------------- initial_epoch, optimizer


def test_initial_epoch_starts_the_count_there(capsys):
    x, y = _blobs()
    model = nn.Sequential(nn.Linear(3, 3))
    model.compile("sgd", "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=5, initial_epoch=3, verbose=2)
    assert history.epoch == [3, 4]
    out = capsys.readouterr().out
    assert "Epoch 4/5" in out and "Epoch 5/5" in out and "Epoch 3/5" not in out
    assert model.fit(x, y, epochs=2, initial_epoch=2, verbose=0).epoch == []  # as Keras: nothing left
    with pytest.raises(ag.ArgumentError, match="initial_epoch"):
        model.fit(x, y, epochs=2, initial_epoch=-1)


def test_model_optimizer_is_the_compiled_one():
    model = nn.Sequential(nn.Linear(3, 3))
    assert model.optimizer is None
    model.compile("adam", "sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, optim.Adam)
    sgd = optim.SGD(model.parameters(), lr=0.1)
    model.compile(sgd, "sparse_categorical_crossentropy")
    assert model.optimizer is sgd

    class Own(nn.Module):  # a PyTorch-style model that keeps its optimizer itself
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.optimizer = optim.SGD(self.parameters(), lr=0.1)

    own = Own()
    assert isinstance(own.optimizer, optim.SGD)
    own.compile("rmsprop", "sparse_categorical_crossentropy")
    assert isinstance(own.optimizer, optim.RMSprop)


# --------------------------------------------------------------------------- the command line


def test_train_resume_goes_on_from_the_backup(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-m", "autograd_cnn", "train", "--model", "lecture-mlp", "--limit", "128",
            "--batch-size", "32", "--epochs", "4", "--resume", "backup", "--save", "w.npz"]
    reference = subprocess.run([*args[:-4], "--save", "ref.npz"], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=180)
    assert reference.returncode == 0, reference.stderr[-2000:]
    # A first run killed in its third epoch's end (its line is printed before the backup is
    # written): its --save is never written.
    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        for line in first.stderr:
            if line.startswith("Epoch 3/4"):
                os.kill(first.pid, signal.SIGKILL)
                break
        first.communicate(timeout=180)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
    assert first.returncode == -signal.SIGKILL and not (tmp_path / "w.npz").exists()
    done = ag.load(tmp_path / "backup" / nn.BackupAndRestore.FILE)["epoch"]
    assert done in (2, 3)  # the third epoch's backup, if the kill came after its write
    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Epoch 4/4" in again.stderr and f"Epoch {done}/4" not in again.stderr
    assert f"BackupAndRestore: restored backup/{nn.BackupAndRestore.FILE}; going on after epoch {done}" in again.stdout
    assert not (tmp_path / "backup").exists()
    resumed, ref = ag.load(tmp_path / "w.npz"), ag.load(tmp_path / "ref.npz")
    assert all(np.array_equal(resumed[k].numpy(), ref[k].numpy()) for k in ref)


def test_train_resume_with_a_backup_of_another_model_is_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    common = [sys.executable, "-m", "autograd_cnn", "train", "--limit", "64", "--batch-size", "32", "--epochs", "2",
              "--resume", "backup"]
    kept = nn.BackupAndRestore(tmp_path / "backup", delete_checkpoint=False)
    x, y = _blobs()
    model = nn.Sequential(nn.Linear(3, 3))
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[kept])  # a backup of another model
    done = subprocess.run([*common, "--model", "lecture-mlp"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 1
    assert done.stderr.startswith("autograd-cnn train: BackupAndRestore: the backup in backup is not of this "
                                  "model and optimizer (")
    assert "Traceback" not in done.stderr
