"""The CuPy backend: lazy import and error messages everywhere; end to end where a GPU is present."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn.backends import cupy_usable

CUPY_OK, CUPY_WHY = cupy_usable()
needs_gpu = pytest.mark.skipif(not CUPY_OK, reason=f"CuPy backend unusable: {CUPY_WHY}")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                          timeout=120)


def test_import_does_not_load_cupy():
    result = _run("import sys, autograd_cnn, autograd_cnn.functional; "
                  "print('cupy' in sys.modules)", AUTOGRAD_CNN_BACKEND="numpy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.skipif(CUPY_OK, reason="CuPy and a GPU are present: the missing-CuPy message cannot show")
def test_cupy_requested_without_cupy_names_variable_value_and_install():
    result = _run("import autograd_cnn", AUTOGRAD_CNN_BACKEND="cuda")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "AUTOGRAD_CNN_BACKEND=cuda" in last
    assert "pip install 'autograd-cnn[gpu]'" in last


def test_auto_without_gpu_falls_back_only_for_auto():
    result = _run("import autograd_cnn as ag; print(ag.get_backend().name)", AUTOGRAD_CNN_BACKEND="auto")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("cupy" if CUPY_OK else "numpy")


@needs_gpu
def test_tensor_round_trip_and_mixed_backends_error():
    x = ag.tensor([[1.0, 2.0]], requires_grad=True)
    g = x.to("cupy")
    assert g.backend == "cupy" and type(g.data).__module__.startswith("cupy")
    y = (g * g).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [[2.0, 4.0]])
    with pytest.raises(ag.BackendError, match="numpy.*cupy|cupy.*numpy"):
        _ = x + g
