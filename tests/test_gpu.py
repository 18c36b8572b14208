"""The CuPy backend: lazy import and error messages everywhere; end to end where a GPU is present."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn.backends import cupy_usable, numba_installed

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
    assert result.stdout.strip() == ("cupy" if CUPY_OK else ("numba" if numba_installed() else "numpy"))


@needs_gpu
def test_tensor_round_trip_and_mixed_backends_error():
    x = ag.tensor([[1.0, 2.0]], requires_grad=True, backend="numpy")
    g = x.to("cupy")
    assert g.backend == "cupy" and type(g.data).__module__.startswith("cupy")
    y = (g * g).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [[2.0, 4.0]])
    with pytest.raises(ag.BackendError, match="numpy.*cupy|cupy.*numpy"):
        _ = x + g


def _lecture_step(backend: str, optimizer: str, seed: int = 0) -> tuple:
    """Two training steps of a small CNN (odd sizes, padded and overlapping pools, smoothed labels):
    the loss, and every parameter afterwards, as host arrays."""
    import autograd_cnn.functional as F
    from autograd_cnn import optim

    rng = np.random.default_rng(seed)
    shapes = {"w1": (4, 1, 3, 3), "b1": (4,), "w2": (6, 4, 3, 3), "b2": (6,), "w3": (3, 6 * 3 * 2)}
    params = {k: ag.tensor(rng.standard_normal(s).astype(np.float32) * 0.3, requires_grad=True, backend=backend)
              for k, s in shapes.items()}
    x = ag.tensor(rng.standard_normal((5, 1, 13, 11)).astype(np.float32), backend=backend)
    y = ag.tensor(np.array([0, 2, 1, 1, 2]), backend=backend)
    make = {"rmsprop": lambda p: optim.RMSprop(p, lr=0.01),
            "adam": lambda p: optim.Adam(p, lr=0.01),
            "sgd_nesterov": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)}[optimizer]
    opt = make(list(params.values()))
    losses = []
    for _ in range(3):  # the third step runs every optimizer's steady-state update
        opt.zero_grad()
        h = F.max_pool2d(F.relu(F.conv2d(x, params["w1"], params["b1"], padding=1)), 3, stride=2, padding=1,
                         ceil_mode=True)
        h = F.max_pool2d(F.relu(F.conv2d(h, params["w2"], params["b2"])), 2, ceil_mode=True)
        loss = F.cross_entropy(F.linear(F.flatten(h), params["w3"]), y, label_smoothing=0.1)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {k: p.numpy() for k, p in params.items()}


@needs_gpu
@pytest.mark.parametrize("optimizer", ["rmsprop", "adam", "sgd_nesterov"])
def test_fused_kernels_agree_with_the_generic_ones_and_numpy(optimizer):
    backend = ag.get_backend("cupy")
    reference = _lecture_step("numpy", optimizer)
    results = []
    for fused in (True, False):
        backend.fused_kernels = fused
        try:
            results.append(_lecture_step("cupy", optimizer))
        finally:
            backend.fused_kernels = True
    for losses, params in results:
        np.testing.assert_allclose(losses, reference[0], rtol=1e-5)
        for name, value in params.items():
            np.testing.assert_allclose(value, reference[1][name], rtol=1e-4, atol=1e-5, err_msg=name)


@needs_gpu
def test_bad_class_index_on_the_gpu_is_reported_at_the_next_read():
    import autograd_cnn.functional as F

    z = ag.tensor(np.zeros((2, 3), dtype=np.float32), backend="cupy")
    loss = F.cross_entropy(z, ag.tensor([0, 3], backend="cupy"))  # queued: no wait for the GPU
    with pytest.raises(ag.ShapeError, match=r"cross_entropy: class indices must lie in \[0, 2\], "
                                            r"got values from 0 to 3"):
        loss.item()
    # Reported once; the backend goes on working.
    good = F.cross_entropy(z, ag.tensor([0, 2], backend="cupy"))
    assert good.item() == pytest.approx(np.log(3), rel=1e-6)


@needs_gpu
def test_bad_class_index_changed_in_place_before_the_read_is_still_reported():
    import autograd_cnn.functional as F

    z = ag.tensor(np.zeros((2, 3), dtype=np.float32), backend="cupy")
    target = ag.tensor([0, 3], backend="cupy")
    loss = F.cross_entropy(z, target)
    target.data[1] = 1  # the values the kernel saw are gone; the error is not
    with pytest.raises(ag.ShapeError, match=r"cross_entropy: a class index outside \[0, 2\] was found on the GPU"):
        loss.item()


@needs_gpu
def test_training_step_never_waits_for_the_gpu():
    import cupyx

    import autograd_cnn.functional as F
    from autograd_cnn import optim

    if not hasattr(cupyx, "allow_synchronize"):
        pytest.skip("this CuPy has no cupyx.allow_synchronize to detect a wait")
    rng = np.random.default_rng(0)
    conv = ag.tensor(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), requires_grad=True, backend="cupy")
    dense = ag.tensor(rng.standard_normal((10, 8 * 13 * 13)).astype(np.float32), requires_grad=True, backend="cupy")
    x = ag.tensor(rng.standard_normal((4, 1, 28, 28)).astype(np.float32), backend="cupy")
    y = ag.tensor(np.array([1, 2, 3, 4]), backend="cupy")
    opt = optim.RMSprop([conv, dense])

    def step() -> None:
        opt.zero_grad()
        h = F.max_pool2d(F.relu(F.conv2d(x, conv)), 2)
        F.cross_entropy(F.linear(F.flatten(h), dense), y).backward()
        opt.step()

    step()  # compiles the kernels and creates the optimizer state
    with cupyx.allow_synchronize(False):  # any host <-> GPU wait raises DeviceSynchronized
        for _ in range(3):
            step()
    ag.get_backend("cupy").synchronize()
