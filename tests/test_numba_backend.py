"""The numba backend's compiled kernels against the NumPy reference: the same op on both backends,
outputs and gradients equal to rounding, in float32 and float64, over odd shapes, strides,
dilation, groups, padding, and max-pool ties; and how numpy and numba tensors mix."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from numba_compare import assert_same

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import optim

pytest.importorskip("numba")

TOLERANCE = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
DTYPES = [np.float32, np.float64]


def _assert_same(fn, arrays: list, dtype) -> None:
    assert_same(fn, arrays, dtype, TOLERANCE)


RNG = np.random.default_rng(7)

CONVS = [  # (x shape, weight shape, keyword arguments)
    ((2, 1, 9, 7), (4, 1, 3, 3), dict()),
    ((3, 3, 10, 11), (5, 3, 3, 2), dict(stride=2, padding=1)),
    ((2, 4, 12, 9), (6, 4, 3, 3), dict(dilation=2, padding=(2, 1))),
    ((2, 6, 8, 8), (4, 3, 3, 3), dict(groups=2, padding="same")),
    ((1, 2, 7, 5), (3, 2, 2, 4), dict(padding="same")),  # even kernel: one more row below, column right
    ((2, 2, 7, 11), (3, 2, 2, 3), dict(stride=(1, 3), padding=(1, 2))),
    ((5, 3, 6, 6), (2, 3, 1, 1), dict()),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONVS)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_and_its_gradients_match_numpy(dtype, x_shape, w_shape, kwargs, bias):
    arrays = [RNG.standard_normal(x_shape), RNG.standard_normal(w_shape)]
    if bias:
        arrays.append(RNG.standard_normal(w_shape[0]))
    _assert_same(lambda *t: F.conv2d(*t, **kwargs), arrays, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_on_a_channels_last_input_matches_numpy(dtype):
    # A conv's output is channels-last in memory: the next conv reads it without a copy.
    arrays = [RNG.standard_normal((3, 2, 9, 9)), RNG.standard_normal((4, 2, 3, 3)), RNG.standard_normal((5, 4, 3, 3))]
    _assert_same(lambda x, w1, w2: F.conv2d(F.relu(F.conv2d(x, w1)), w2, stride=2), arrays, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv1d_and_conv_transpose2d_match_numpy(dtype):
    _assert_same(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=2, dilation=2),
                 [RNG.standard_normal((3, 4, 17)), RNG.standard_normal((5, 4, 3)), RNG.standard_normal(5)], dtype)
    _assert_same(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
                 [RNG.standard_normal((2, 3, 5, 4)), RNG.standard_normal((3, 4, 3, 3)), RNG.standard_normal(4)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                    dict(kernel_size=(2, 3), stride=(1, 2)), dict(kernel_size=2, dilation=2),
                                    dict(kernel_size=3, stride=1)])
def test_max_pool_matches_numpy(dtype, kwargs):
    _assert_same(lambda x: F.max_pool2d(x, **kwargs), [RNG.standard_normal((3, 4, 11, 9))], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 1), (3, 2)])
def test_max_pool_ties_send_the_gradient_to_the_first_maximum(dtype, kernel, stride):
    x = RNG.integers(0, 3, size=(2, 3, 8, 9)).astype(float)  # many ties in every window
    _assert_same(lambda t: F.max_pool2d(t, kernel, stride), [x], dtype)
    t = ag.tensor(np.zeros((1, 1, 2, 2), dtype=dtype), requires_grad=True, backend="numba")
    F.max_pool2d(t, 2).sum().backward()
    assert t.grad.numpy().ravel().tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_of_nan_is_nan_as_on_numpy(dtype):
    x = np.arange(16, dtype=dtype).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    outputs = [F.max_pool2d(ag.tensor(x, backend=b), 2).numpy() for b in ("numpy", "numba")]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert np.isnan(outputs[1][0, 0, 0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                    dict(kernel_size=(3, 2), stride=1)])
def test_avg_pool_matches_numpy(dtype, kwargs):
    _assert_same(lambda x: F.avg_pool2d(x, **kwargs), [RNG.standard_normal((2, 3, 9, 10))], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 5), (64, 32, 26, 26), (7, 1000)])
def test_relu_matches_numpy_in_every_layout(dtype, shape):
    x = RNG.standard_normal(shape)
    x.flat[::7] = 0  # ReLU's kink: the gradient there is 0 on both
    _assert_same(F.relu, [x], dtype)
    if len(shape) == 4:  # a channels-last activation, as a conv's output
        _assert_same(lambda t: F.relu(t.transpose(0, 3, 1, 2)), [x.transpose(0, 2, 3, 1).copy()], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_keeps_nan_as_numpy_does(dtype):
    x = np.full((600, 1000), -1.0, dtype=dtype)
    x[3, 4] = np.nan
    y = F.relu(ag.tensor(x, backend="numba")).numpy()
    assert np.isnan(y[3, 4]) and np.count_nonzero(y) == 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_matches_numpy(dtype, label_smoothing):
    z, y = RNG.standard_normal((13, 7)) * 5, RNG.integers(0, 7, size=13)
    results = []
    for backend in ("numpy", "numba"):
        logits = ag.tensor(z.astype(dtype), requires_grad=True, backend=backend)
        loss = F.cross_entropy(logits, ag.tensor(y, backend=backend), label_smoothing=label_smoothing)
        loss.backward()
        results.append((loss.item(), logits.grad.numpy()))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-6)
    np.testing.assert_allclose(results[1][1], results[0][1], **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.8, dampening=0.3),
    lambda ps: optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-7),
    lambda ps: optim.Adam(ps, lr=0.01),
    lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    lambda ps: optim.Adadelta(ps, lr=1.0),
    lambda ps: _keras(ps, "SGD", learning_rate=0.1, momentum=0.9),
    lambda ps: _keras(ps, "SGD", learning_rate=0.1, momentum=0.9, nesterov=True),
    lambda ps: _keras(ps, "RMSprop"),
    lambda ps: _keras(ps, "RMSprop", momentum=0.5, centered=True),
    lambda ps: _keras(ps, "RMSprop", centered=True),
    lambda ps: _keras(ps, "Adadelta", learning_rate=1.0),
    lambda ps: _keras(ps, "Adagrad", learning_rate=0.1),
], ids=["sgd-nesterov", "sgd-dampening", "rmsprop", "adam", "adamw", "adadelta", "keras-sgd", "keras-nesterov",
        "keras-rmsprop", "keras-rmsprop-centered-momentum", "keras-rmsprop-centered", "keras-adadelta",
        "keras-adagrad"])
def test_optimizer_updates_match_numpy(dtype, make):
    """Every optimizer's update, compiled on numba (PyTorch's formulas and Keras's), gives the NumPy
    backend's weights to rounding, over four steps of a parameter large enough to run in parts."""
    start, grads = RNG.standard_normal((3, 33, 17)), RNG.standard_normal((4, 3, 33, 17))
    finals = []
    for backend in ("numpy", "numba"):
        p = ag.tensor(start.astype(dtype), requires_grad=True, backend=backend)
        optimizer = make([p])
        for g in grads:
            p.grad = ag.tensor(g.astype(dtype), backend=backend)
            optimizer.step()
        finals.append(p.numpy())
    np.testing.assert_allclose(finals[1], finals[0], rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def _keras(params: list, name: str, **settings):
    from autograd_cnn.keras import optimizers

    optimizer = getattr(optimizers, name)(**settings)
    optimizer.build(params)
    return optimizer


def test_the_keras_updates_run_compiled(monkeypatch):
    """The Keras formulas' updates run numba's kernels, not the NumPy ones they fall back to."""
    from autograd_cnn.backends import numba_kernels

    called = []
    for name in ("keras_sgd_momentum_update", "keras_rmsprop_update", "adadelta_update", "adagrad_update"):
        real = getattr(numba_kernels, name)
        monkeypatch.setattr(numba_kernels, name, lambda *a, _real=real, _name=name: (called.append(_name), _real(*a)))
    for name, settings in (("SGD", {"momentum": 0.9}), ("RMSprop", {}), ("Adadelta", {}), ("Adagrad", {})):
        p = ag.tensor(np.ones((4, 5), np.float32), requires_grad=True, backend="numba")
        p.grad = ag.tensor(np.full((4, 5), 0.5, np.float32), backend="numba")
        _keras([p], name, **settings).step()
    assert called == ["keras_sgd_momentum_update", "keras_rmsprop_update", "adadelta_update", "adagrad_update"]


def test_numpy_and_numba_tensors_mix_and_the_op_runs_on_numba():
    a = ag.tensor([1.0, 2.0], backend="numpy")
    b = ag.tensor([3.0, 4.0], backend="numba", requires_grad=True)
    for y in (a * b, b * a):
        assert y.backend_object == "numba"
        assert y.numpy().tolist() == [3.0, 8.0]
    (a * b).sum().backward()
    assert b.grad.numpy().tolist() == [1.0, 2.0]
    assert a.to("numba").backend_object == "numba"


def test_integers_and_float16_fall_back_to_the_numpy_kernels():
    x = np.arange(-8, 8).reshape(1, 1, 4, 4)
    for dtype in (np.int64, np.float16):
        outputs = [F.max_pool2d(F.relu(ag.tensor(x.astype(dtype), backend=b)), 2).numpy() for b in ("numpy", "numba")]
        assert outputs[1].dtype == dtype
        np.testing.assert_array_equal(outputs[0], outputs[1])


def test_the_numba_backend_names_itself():
    backend = ag.get_backend("numba")
    assert backend.name == "numba" and str(backend) == "numba"
    info = backend.describe()
    assert info["backend"] == "numba" and "numba" in info and info["device"] == "CPU"


def test_fit_names_the_backend_in_its_first_line_when_verbose(capsys):
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    for backend in ("numpy", "numba"):
        with ag.use_backend(backend):
            model = ag.nn.Sequential(ag.nn.Linear(4, 2))
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        assert capsys.readouterr().out == ""
        model.fit(x, y, epochs=1, batch_size=8, verbose=2)
        first = capsys.readouterr().out.splitlines()[0]
        assert first.startswith(f"Training on the {backend} backend (CPU")


def test_one_seed_gives_the_same_numbers_on_numpy_and_numba():
    # Whether numba was loaded before manual_seed or after: a model starts alike on either.
    draws = []
    for backend in ("numpy", "numba"):
        ag.manual_seed(3)
        draws.append(ag.randn(5, backend=backend).numpy())
    np.testing.assert_array_equal(draws[0], draws[1])


def test_the_numba_backend_takes_its_library_objects_out_of_the_collectors_passes():
    """Numba more than doubles the Python heap; the backend freezes what exists when it starts
    (``settle_library_objects``), and the NumPy backend leaves the collector as it is."""
    code = ("import gc, autograd_cnn as ag; ag.set_backend('{0}'); (ag.tensor([1.0]) * 2).numpy(); "
            "print(ag.get_backend().name, gc.get_freeze_count())")
    for name, frozen in (("numba", True), ("numpy", False)):
        done = subprocess.run([sys.executable, "-c", code.format(name)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        backend, count = done.stdout.split()
        assert backend == name and (int(count) > 10_000) == frozen, done.stdout
