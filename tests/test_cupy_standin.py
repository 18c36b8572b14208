"""The CuPy backend's own code, run where no GPU is: its fused-kernel paths against NumPy.

A subprocess imports ``tests/cupy_standin`` as ``cupy`` (NumPy arrays, the CUDA kernel bodies
compiled as C++) and runs the backend-parametrized op, gradient, pooling, convolution, module
and GPU tests on the ``cupy`` backend. On a machine with a GPU the real CuPy runs them instead.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_cuda_sources import COMPILER

from autograd_cnn.backends import cupy_usable

HERE = Path(__file__).parent
# Files whose backend-parametrized tests cover the fused paths (ops, gradients of every op,
# pooling, convolution, modules, optimizers, and the GPU file's fused-vs-generic checks),
# np.asarray's refusal of a GPU tensor (DLPack), the ONNX export of a GPU model, and fit on a
# GPU (a step that is not finite is skipped on the device and reported at the next read), and a
# Keras model's fit.
FILES = ["test_ops.py", "test_grad.py", "test_pool.py", "test_conv.py", "test_nn.py", "test_optim.py",
         "test_gpu.py", "test_dlpack.py", "test_onnx.py", "test_training.py", "test_keras_models.py"]
# What a stand-in cannot show: its arrays are NumPy's, so NumPy and "CuPy" tensors mix freely.
NOT_ON_A_STANDIN = "not mixed_backends and not state_follows and not import_does_not_load"


@pytest.mark.slow
@pytest.mark.skipif(COMPILER is None, reason="no C++ compiler (g++) to build the kernel bodies")
@pytest.mark.skipif(cupy_usable()[0], reason="CuPy and a GPU are present: the real backend runs these tests")
def test_cupy_backend_code_passes_the_op_tests_on_a_numpy_standin(tmp_path):
    env = {**os.environ, "AUTOGRAD_CNN_STANDIN_BUILD": str(tmp_path), "AUTOGRAD_CNN_BACKEND": "numpy",
           "PYTHONPATH": os.pathsep.join([str(HERE / "cupy_standin"), str(HERE), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist",
                          "-k", f"(cupy or fused_kernels or bad_class_index) and {NOT_ON_A_STANDIN}", *FILES],
                         cwd=HERE, env=env, capture_output=True, text=True, timeout=600)
    tail = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    passed = re.search(r"(\d+) passed", run.stdout)
    assert passed and int(passed[1]) >= 250, f"too few tests ran on the stand-in:\n{tail}"
