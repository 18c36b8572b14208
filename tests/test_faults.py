"""Faults injected from outside: a process killed in the middle of ag.save, a disk that fills up,
a damaged file in the data cache. Each checks that nothing good is lost, nothing half-made is
left behind, and the error says what happened and what to do.

Every child process gets a timeout, runs in its own session and is ended by its own id.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import data
from autograd_cnn.data import DataError, read_idx

ROOT = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and RLIMIT_FSIZE are POSIX")


def _start(script: str, *args: str) -> subprocess.Popen:
    """A Python child running ``script``, in its own session, speaking through pipes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOGRAD_CNN_BACKEND": "numpy"}
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _end(child: subprocess.Popen) -> None:
    """Kill the child by its own id if it still runs, and reap it."""
    if child.poll() is None:
        child.kill()
    child.wait(timeout=30)
    for pipe in (child.stdout, child.stderr):
        if pipe:
            pipe.close()


def _read_line(child: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"the child said nothing for {timeout} s")
    return child.stdout.readline().strip()


# --------------------------------------------------------------------------- kill -9 during ag.save

SAVE_FOREVER = """
import sys
import numpy as np
import autograd_cnn as ag

path, first = sys.argv[1], int(sys.argv[2])
print("ready", flush=True)
version = first
while True:
    # A large state dict (16 MiB) whose every value is its version: a mix of two saves shows.
    state = {f"layer{i}.weight": ag.tensor(np.full(262144, version, dtype="float32")) for i in range(16)}
    ag.save({"version": version, "state": state}, path)
    print(version, flush=True)
    version += 1
"""


def _check_checkpoint(path: Path) -> int:
    """The checkpoint's version, after checking every array holds that version and no other."""
    saved = ag.load(path)
    for name, t in saved["state"].items():
        assert t.shape == (262144,) and np.all(t.numpy() == saved["version"]), f"{name} mixes two saves"
    return saved["version"]


@posix_only
@pytest.mark.slow
def test_kill_9_in_the_middle_of_save_never_loses_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    ag.save({"version": 0, "state": {f"layer{i}.weight": ag.zeros(262144) for i in range(16)}}, path)
    last_good, rounds_with_litter, rng = 0, 0, random.Random(0)
    for round_ in range(1, 21):
        child = _start(SAVE_FOREVER, str(path), str(round_ * 1000))
        try:
            assert _read_line(child, timeout=60) == "ready", child.stderr.read()
            time.sleep(rng.uniform(0.0, 0.15))  # before, during or between saves of 16 MiB
            child.kill()  # SIGKILL: no handler, no finally, no cleanup
            child.wait(timeout=30)
            finished = [int(line) for line in child.stdout.read().split()]
        finally:
            _end(child)
        assert child.returncode == -9
        version = _check_checkpoint(path)
        # The newest save that finished, or the one the kill caught just after its rename.
        newest = finished[-1] if finished else last_good
        assert version in (newest, newest + 1 if finished else round_ * 1000), (version, finished)
        last_good = version
        rounds_with_litter += any(p.name != "model.npz" for p in tmp_path.iterdir())
    print(f"kill -9 during ag.save: 20 rounds, {rounds_with_litter} left a temporary file behind")
    ag.save({"version": -1, "state": {}}, path)  # the next save clears what the killed ones left
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    assert ag.load(path)["version"] == -1


# --------------------------------------------------------------------------- a full disk

SAVE_OVER_THE_LIMIT = """
import json, resource, signal, sys
import numpy as np
import autograd_cnn as ag

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # no file may grow past 1 MiB
try:
    ag.save({"w": ag.tensor(np.ones(1 << 20, dtype="float32"))}, sys.argv[1])  # 4 MiB
    print(json.dumps({"saved": True}))
except Exception as err:
    print(json.dumps({"type": type(err).__name__, "message": str(err), "errno": getattr(err, "errno", None),
                      "ours": isinstance(err, ag.CheckpointError), "oserror": isinstance(err, OSError)}))
"""


@posix_only
def test_a_full_disk_is_a_clear_error_and_the_old_checkpoint_stays(tmp_path):
    path = tmp_path / "model.npz"
    ag.save({"w": ag.zeros(1000)}, path)  # 4 KB: the last good checkpoint
    before = path.read_bytes()
    child = _start(SAVE_OVER_THE_LIMIT, str(path))
    try:
        out, err = child.communicate(timeout=120)
    finally:
        _end(child)
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"stderr": err}
    assert result.get("ours") and result["oserror"], result
    assert result["errno"] == 27  # EFBIG, File too large
    message = result["message"]
    assert message.startswith(f"ag.save: could not write {path}: File too large"), message
    assert "unchanged" in message and ".tmp" not in message
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # the partial file is gone
    np.testing.assert_array_equal(ag.load(path)["w"].numpy(), np.zeros(1000))


# --------------------------------------------------------------------------- a damaged data cache


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype("u1").tobytes(), mtime=0)


@pytest.fixture
def tiny_mnist(offline, monkeypatch):
    """A small stand-in for MNIST in AUTOGRAD_CNN_DATA, its checksums registered as the published ones."""
    folder = offline / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    contents = {
        "train-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (20, 28, 28))),
        "train-labels-idx1-ubyte.gz": _idx(rng.integers(0, 10, 20)),
        "t10k-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (10, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": _idx(rng.integers(0, 10, 10)),
    }
    files = []
    for name, raw in contents.items():
        (folder / name).write_bytes(raw)
        files.append(data.RemoteFile(name, len(raw), hashlib.sha256(raw).hexdigest()))
    mnist = data.DATASETS["mnist"]
    monkeypatch.setitem(data.DATASETS, "mnist", type(mnist)(mnist.name, tuple(files), mnist.mirrors))
    monkeypatch.setenv(data.DATA_ENV, str(folder))
    return folder


def _damage(path: Path, at: int | None = None) -> None:
    """Flip 8 bytes of the file: at ``at``, or in the middle."""
    raw = bytearray(path.read_bytes())
    at = len(raw) // 2 if at is None else at
    raw[at:at + 8] = bytes(b ^ 0xFF for b in raw[at:at + 8])
    path.write_bytes(bytes(raw))


def test_a_damaged_file_in_the_data_folder_is_named_with_what_to_do(tiny_mnist):
    (x_train, _), (x_test, _) = data.load_mnist(download_missing=False)  # whole: it loads
    assert x_train.shape == (20, 28, 28) and x_test.shape == (10, 28, 28)
    damaged = tiny_mnist / "train-images-idx3-ubyte.gz"
    _damage(damaged)
    with pytest.raises(DataError) as info:
        data.load_mnist(progress=False)  # the mirrors do not answer: offline
    message = str(info.value)
    assert f"{damaged} is not the published mnist file" in message
    assert "could not find train-images-idx3-ubyte.gz" in message
    assert "To get the files" in message and data.DATA_ENV in message
    assert isinstance(info.value, ag.AutogradError) and isinstance(info.value, OSError)


def test_a_truncated_gzip_is_a_data_error_naming_the_file(tmp_path):
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(_idx(np.arange(100) % 10)[:-10])
    with pytest.raises(DataError, match=rf"{path}.*damaged gzip.*delete it and download it again"):
        read_idx(path)


def test_a_gzip_damaged_inside_is_a_data_error_naming_the_file(tmp_path):
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(_idx(np.arange(28 * 28 * 50).reshape(50, 28, 28) % 251))
    _damage(path, at=10)  # the first bytes after the gzip header: the compressed stream itself
    with pytest.raises(DataError, match=rf"{path}.*delete it and download it again"):
        read_idx(path)
