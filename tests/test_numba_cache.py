"""The numba backend's compiled kernels are kept on disk: a fresh process finds them, also where the
package's own folder cannot be written (an installed package), and several processes at once
(mpiexec) share them. NUMBA_CACHE_DIR, which overrides both folders, is what benchmarks/first_step.py
uses to time a process with the cache empty and filled (times are recorded, not asserted here)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import autograd_cnn

pytest.importorskip("numba")

# The lecture CNN's first training step, on numba; prints where the kernels' module lives.
FIRST_STEP = """
import numpy as np
import autograd_cnn as ag
from autograd_cnn import models
from autograd_cnn.backends import numba_kernels
model = models.lecture_cnn()
model.compile("rmsprop", "sparse_categorical_crossentropy")
x = np.random.default_rng(0).uniform(0, 1, (8, 1, 28, 28)).astype(np.float32)
model.fit(x, np.arange(8) % 10, epochs=1, batch_size=8, verbose=0)
print(ag.get_backend().name, numba_kernels.__file__)
"""


def _run(cwd: Path, env: dict, processes: int = 1) -> list[subprocess.CompletedProcess]:
    """``processes`` copies of FIRST_STEP started at once (as mpiexec starts them), each waited for."""
    children = [subprocess.Popen([sys.executable, "-c", FIRST_STEP], cwd=cwd, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(processes)]
    done = []
    for child in children:
        try:
            out, err = child.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
        done.append(subprocess.CompletedProcess(child.args, child.returncode, out, err))
    return done


@pytest.mark.slow
def test_kernels_are_cached_in_the_user_folder_when_the_package_folder_is_not_writable(tmp_path):
    # A copy of the package whose backends/__pycache__ is a file: nothing can be written beside
    # the kernels' source, as in a read-only installation (chmod does not stop root; this does).
    package = tmp_path / "site" / "autograd_cnn"
    shutil.copytree(Path(autograd_cnn.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "backends" / "__pycache__").write_text("not a folder")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(package.parent), XDG_CACHE_HOME=str(tmp_path / "cache"), AUTOGRAD_CNN_BACKEND="numba",
               PYTHONDONTWRITEBYTECODE="1")
    for processes in (2, 1):  # two at once fill the empty cache together; then one finds it filled
        for run in _run(tmp_path, env, processes):
            assert run.returncode == 0, run.stderr[-3000:]
            name, path = run.stdout.split()
            assert name == "numba" and Path(path).is_relative_to(package)
    kept = list((tmp_path / "cache" / "numba").rglob("numba_kernels.*.nbi"))
    assert kept, "the kernels were not kept in the user-wide cache folder"

