"""The Keras-style loop: compile, fit, evaluate, predict, callbacks, Ctrl-C, NaN, reproducibility."""
from __future__ import annotations

import gzip
import os
import pathlib
import signal

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import nn, optim

# The project's data folder for developers and CI sits beside the repository.
_MNIST_5K = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-5k"


def _read_idx(path):
    with gzip.open(path) as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _blobs(n=240, seed=0):
    """Three well-separated Gaussian clusters in 2-D."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    centers = np.array([[2.0, 0.0], [-2.0, 2.0], [0.0, -2.5]])
    x = (centers[y] + 0.5 * rng.standard_normal((n, 2))).astype("float32")
    return x, y


def _mlp(softmax=True, dropout=0.0):
    layers = [nn.Linear(2, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3)]
    return nn.Sequential(*(layers + [nn.Softmax()] if softmax else layers))


# --------------------------------------------------------------------------- learning


def test_fit_on_real_digits_reaches_a_clear_accuracy():
    if not _MNIST_5K.is_dir():
        pytest.skip("the mnist-5k sample is not present")
    x = _read_idx(_MNIST_5K / "images-idx3-ubyte.gz")
    y = _read_idx(_MNIST_5K / "labels-idx1-ubyte.gz")
    order = np.random.default_rng(0).permutation(len(x))[:1300]  # the file is sorted by label
    x = x[order].reshape(-1, 784).astype("float32") / 255
    y = y[order]
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10), nn.Softmax())
    model.compile("rmsprop", "sparse_categorical_crossentropy", ["accuracy"])
    history = model.fit(x[:1000], y[:1000], epochs=6, batch_size=32, validation_data=(x[1000:], y[1000:]),
                        verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(x[1000:], y[1000:], verbose=0)
    assert accuracy > 0.85
    assert history.history["val_accuracy"][-1] == pytest.approx(accuracy)
    probs = model.predict(x[1000:1010])
    assert probs.shape == (10, 10) and isinstance(probs, np.ndarray)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


def test_fit_history_and_tensor_inputs(backend):
    x, y = _blobs()
    ag.manual_seed(0)
    model = _mlp(softmax=False)
    model.compile(optim.Adam(model.parameters(), lr=0.05), "sparse_categorical_crossentropy", ["accuracy"])
    xt, yt = ag.tensor(x, backend=backend), ag.tensor(y, backend=backend)  # batches taken on the backend
    history = model.fit(xt, yt, epochs=4, batch_size=32, validation_data=(x, y), verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 4 for v in history.history.values())
    assert history.history["accuracy"][-1] > 0.95
    probs = model.predict(x[:5])  # a logits model still predicts probabilities
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


def test_categorical_and_mse_losses():
    x, y = _blobs()
    onehot = np.eye(3, dtype="float32")[y]
    ag.manual_seed(0)
    model = _mlp()
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    model.fit(x, onehot, epochs=15, batch_size=32, verbose=0)
    assert model.evaluate(x, onehot, verbose=0)[1] > 0.95
    reg = nn.Sequential(nn.Linear(2, 1))
    reg.compile(optim.SGD(reg.parameters(), lr=0.1), "mse")
    target = (x @ np.array([[1.5], [-0.5]], dtype="float32") + 0.25)
    reg.fit(x, target, epochs=20, batch_size=32, verbose=0)
    assert reg.evaluate(x, target, verbose=0) < 1e-3


# --------------------------------------------------------------------------- logits or probabilities


def test_softmax_last_layer_loss_reads_the_logits():
    x, y = _blobs(60)
    model = _mlp()
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    loss, _ = model.evaluate(x, y, batch_size=60, verbose=0)
    logits = model[:-1](ag.tensor(x))
    assert loss == pytest.approx(F.cross_entropy(logits, ag.tensor(y)).item(), rel=1e-6)
    # Huge logits: softmax would round to exactly 0 and log(0) = -inf; the loss must stay finite.
    model[3].weight.data *= 1e4
    huge, _ = model.evaluate(x, y, batch_size=60, verbose=0)
    assert np.isfinite(huge) and huge > 10


def test_from_logits_overrides():
    class SoftmaxInForward(nn.Module):  # probabilities, but not from a Softmax layer
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 3)

        def forward(self, x):
            return F.softmax(self.fc(x))

    x, y = _blobs(30)
    model = SoftmaxInForward()
    model.compile("sgd", "sparse_categorical_crossentropy", from_logits=False)
    expected = F.cross_entropy(model.fc(ag.tensor(x)), ag.tensor(y)).item()
    assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(model.predict(x).sum(axis=1), 1, rtol=1e-5)  # no second softmax
    model.compile("sgd", "sparse_categorical_crossentropy", from_logits=True)
    assert model.evaluate(x, y, verbose=0) != pytest.approx(expected, rel=1e-3)


# --------------------------------------------------------------------------- control


def _fit_run(seed):
    x, y = _blobs()
    ag.manual_seed(seed)
    model = _mlp(dropout=0.3)
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    return model.fit(x, y, epochs=3, batch_size=16, verbose=0).history


def test_manual_seed_repeats_a_run_exactly():
    first, second = _fit_run(7), _fit_run(7)
    assert first == second
    assert _fit_run(8)["loss"] != first["loss"]


def test_early_stopping_stops_and_restores_best_weights():
    x, y = _blobs(60)
    model = _mlp()
    model.compile(optim.SGD(model.parameters(), lr=0.0), "sparse_categorical_crossentropy")
    stop = nn.EarlyStopping(monitor="val_loss", patience=2)
    history = model.fit(x, y, epochs=10, validation_data=(x, y), verbose=0, callbacks=[stop])
    assert len(history.history["loss"]) == 3 and stop.stopped_epoch == 2

    layer = nn.Linear(1, 1)
    stopper = nn.EarlyStopping(monitor="loss", patience=5, restore_best_weights=True)
    stopper.set_model(layer)
    stopper.on_train_begin()
    for epoch, (weight, loss) in enumerate([(1.0, 0.5), (2.0, 0.2), (3.0, 0.4)]):
        layer.weight.data[...] = weight
        stopper.on_epoch_end(epoch, {"loss": loss})
    stopper.on_train_end()
    assert layer.weight.numpy()[0, 0] == 2.0


def test_model_checkpoint_saves_only_improvements(tmp_path):
    x, y = _blobs(60)
    model = _mlp()
    model.compile(optim.SGD(model.parameters(), lr=0.0), "sparse_categorical_crossentropy")
    path = str(tmp_path / "ckpt-{epoch:02d}.npz")
    model.fit(x, y, epochs=3, validation_data=(x, y), verbose=0,
              callbacks=[nn.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)])
    assert sorted(os.listdir(tmp_path)) == ["ckpt-01.npz"]
    model.load_state_dict(ag.load(tmp_path / "ckpt-01.npz"))
    every = str(tmp_path / "all-{epoch}.npz")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[nn.ModelCheckpoint(every, save_best_only=False)])
    assert {"all-1.npz", "all-2.npz"} <= set(os.listdir(tmp_path))


class _InterruptAt(nn.Callback):
    def __init__(self, epoch, step, real_signal=False):
        self.at, self.epoch, self.real_signal, self.steps_after = (epoch, step), 0, real_signal, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            if not self.real_signal:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: fit finishes this step, then stops
        elif (self.epoch, batch) > self.at:
            self.steps_after += 1


@pytest.mark.parametrize("real_signal", [False, True])
def test_ctrl_c_returns_the_history_so_far(real_signal):
    x, y = _blobs(64)
    model = _mlp()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    stopper = _InterruptAt(epoch=1, step=2, real_signal=real_signal)
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[stopper])
    assert history.interrupted and len(history.history["loss"]) == 1
    assert stopper.steps_after == 0
    assert model.training  # its mode is restored and it still works
    assert model.predict(x[:2]).shape == (2, 3)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_nan_inputs_are_named_before_training():
    x, y = _blobs(64)
    x[37, 1] = np.nan
    model = _mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    before = [p.numpy().copy() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"fit: x holds NaN or Inf \(the first at x\[37\]\)") as err:
        model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert isinstance(err.value, ag.AutogradError)
    assert all(np.array_equal(p.numpy(), w) for p, w in zip(model.parameters(), before))


def test_verbose_modes(capsys):
    x, y = _blobs(40)
    model = _mlp()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    model.fit(x, y, epochs=1, batch_size=8, verbose=1)
    err = capsys.readouterr().err
    assert "Epoch 1/1" in err and "5/5" in err and "loss=" in err and "accuracy=" in err
    model.fit(x, y, epochs=2, batch_size=8, verbose=2)
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 2 and " - loss: " in out


def test_usage_errors():
    x, y = _blobs(10)
    model = _mlp()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        model.compile("adam", "hinge")
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        model.compile("lbfgs")
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        model.compile("adam", metrics=["f1"])
    model.compile("adam")
    with pytest.raises(ag.ShapeError, match="same number of samples"):
        model.fit(x, y[:5], verbose=0)
    with pytest.raises(ag.ShapeError, match=r"Linear\(2, 16\) at \[0\] expects input \(N, 2\), got \(10, 3\)"):
        model.fit(np.zeros((10, 3)), y, verbose=0)
