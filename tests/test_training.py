"""The Keras-style loop: compile, fit, evaluate, predict, callbacks, Ctrl-C, NaN, reproducibility."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import data, nn, optim


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
    x, y = data.load_sample()  # the 5,000 digits that ship inside the package
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
    model.compile("sgd", "sparse_categorical_crossentropy", from_logits=True)  # wrong: it is a softmax
    with pytest.raises(ag.ArgumentError, match=r"from_logits=True\): the model's output is a softmax over the "
                                               r"classes, axis -1, so it holds probabilities"):
        model.evaluate(x, y, verbose=0)


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


# --------------------------------------------------------------------------- non-finite steps


def _weights(model):
    return [p.numpy().copy() for p in model.parameters()]


class _WeightsAfterEachStep(nn.Callback):
    """``seen[k]``: the weights after k finished steps (``seen[0]``: before fit)."""

    def on_train_begin(self, logs=None):
        self.seen = [_weights(self.model)]

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(_weights(self.model))


def _same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


def _loss_turning(value, at_call):
    """Cross-entropy on logits, times ``value`` (nan or inf) at its ``at_call``-th call."""
    calls = []

    def loss(out, target):  # fit gives a callable loss its targets as floats, like the outputs
        calls.append(1)
        result = F.cross_entropy(out, target.astype("int64"))
        return result * value if len(calls) == at_call else result
    return loss


def _where(err):
    """(epoch, step) that a non-finite error names."""
    found = re.search(r"epoch (\d+), step (\d+)\b", str(err))
    assert found, str(err)
    return int(found[1]), int(found[2])


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_a_non_finite_loss_stops_fit_before_the_update(backend, value):
    x, y = _blobs(64)
    model = _mlp(softmax=False)
    model.compile(optim.SGD(model.parameters(), lr=0.1, momentum=0.9), _loss_turning(value, at_call=13))
    steps = _WeightsAfterEachStep()
    with pytest.raises(FloatingPointError) as err:  # 8 steps an epoch: call 13 is epoch 2, step 5
        model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[steps])
    assert isinstance(err.value, ag.AutogradError)
    assert _where(err.value) == (2, 5)
    assert f"the loss is {value}" in str(err.value)
    assert "learning rate" in str(err.value) and "ag.detect_anomaly()" in str(err.value)
    assert _same(_weights(model), steps.seen[12])  # the weights of the last good step, untouched since
    momentum = [s["momentum_buffer"] for s in model._trainer.optimizer.state.values()]
    assert all(np.isfinite(m).all() for m in momentum)  # nor did the optimizer's state take the step


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_an_exploding_mse_stops_before_inf_reaches_the_weights(backend):
    rng = np.random.default_rng(0)
    x = (100 * rng.standard_normal((64, 2))).astype("float32")
    target = x @ np.array([[1.0], [2.0]], dtype="float32")
    model = nn.Sequential(nn.Linear(2, 1))
    model.compile(optim.SGD(model.parameters(), lr=1.0), "mse")  # far too large: each step overshoots
    steps = _WeightsAfterEachStep()
    with pytest.raises(FloatingPointError) as err:
        model.fit(x, target, epochs=20, batch_size=8, shuffle=False, verbose=0, callbacks=[steps])
    epoch, step = _where(err.value)
    bad = (epoch - 1) * 8 + step  # the step that was not taken, counted from 1
    assert re.search(r"the loss is (inf|nan)\b", str(err.value)), str(err.value)
    assert all(np.isfinite(w).all() for w in _weights(model))
    assert _same(_weights(model), steps.seen[bad - 1])
    assert all(np.isfinite(w).all() for w in steps.seen[bad - 1])


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_a_non_finite_gradient_stops_fit_and_names_the_parameter():
    x, y = _blobs(64)
    model = _mlp(softmax=False)
    model.compile("adam", "sparse_categorical_crossentropy")
    calls = []

    def poison(grad):
        calls.append(1)
        return grad * np.inf if len(calls) == 4 else grad
    model[3].weight.register_hook(poison)
    steps = _WeightsAfterEachStep()
    with pytest.raises(FloatingPointError) as err:
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[steps])
    assert _where(err.value) == (1, 4)
    assert "the gradient of 3.weight holds NaN or Inf" in str(err.value)
    assert _same(_weights(model), steps.seen[3])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_on_a_gpu_the_step_is_skipped_on_the_device_and_reported_at_the_next_read(monkeypatch, optimizer):
    """The device path (what a GPU runs), here on NumPy arrays: no read of a value per step;
    a bad step and every step after it until the next read leave the weights as they were."""
    from autograd_cnn.nn import guard, training

    monkeypatch.setattr(guard.StepGuard, "HOST_CHECKED", ())  # NumPy is read as a GPU would be
    monkeypatch.setattr(training, "_READ_INTERVAL", 1e9)  # no read before the end of the epoch
    reads = []
    real_read = guard.StepGuard.read
    monkeypatch.setattr(guard.StepGuard, "read", lambda self, array: reads.append(1) or real_read(self, array))
    x, y = _blobs(64)
    model = _mlp(softmax=False)
    model.compile(optimizer, _loss_turning(np.nan, at_call=13))
    steps = _WeightsAfterEachStep()
    with pytest.raises(FloatingPointError) as err:
        model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[steps])
    assert _where(err.value) == (2, 5) and "the loss is nan" in str(err.value)
    assert len(steps.seen) == 17  # the second epoch ran to its end: read there, not at each step
    assert all(_same(w, steps.seen[12]) for w in steps.seen[12:])
    assert _same(_weights(model), steps.seen[12])
    assert len(reads) == 3  # the flag at the end of epoch 1; at the end of epoch 2, the flag and the details
    state = list(model._trainer.optimizer.state.values())
    assert all(np.isfinite(v).all() for s in state for v in s.values() if hasattr(v, "shape"))
    if optimizer == "adam":
        assert all(s["step"] == 12 for s in state)  # the skipped steps are not counted
    model.compile(optimizer, "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # the model trains on from there
    assert all(np.isfinite(w).all() for w in _weights(model))


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_on_a_gpu_a_bad_first_step_leaves_no_optimizer_state(monkeypatch):
    from autograd_cnn.nn import guard

    monkeypatch.setattr(guard.StepGuard, "HOST_CHECKED", ())
    x, y = _blobs(16)
    model = _mlp(softmax=False)
    before = _weights(model)
    opt = optim.Adam(model.parameters())
    model.compile(opt, _loss_turning(np.inf, at_call=1))
    with pytest.raises(FloatingPointError) as err:
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert _where(err.value) == (1, 1) and "weights it had before fit" in str(err.value)
    assert _same(_weights(model), before)
    assert all(not s for s in opt.state.values())  # as if it had never stepped


def test_nan_inputs_are_named_before_training():
    x, y = _blobs(64)
    x[37, 1] = np.nan
    model = _mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    before = _weights(model)
    with pytest.raises(ValueError, match=r"fit: x holds NaN or Inf \(the first at x\[37\]\)") as err:
        model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert isinstance(err.value, ag.AutogradError)
    assert _same(_weights(model), before)


_CHILD = """
import json, sys, time
import numpy as np
import autograd_cnn as ag
from autograd_cnn import nn

class Steps(nn.Callback):
    def on_train_begin(self, logs=None):
        self.count, self.last = 0, None
    def on_train_batch_end(self, batch, logs=None):
        self.count += 1
        self.last = [p.numpy().copy() for p in self.model.parameters()]
        if self.count == 5:
            print("ready", flush=True)
        time.sleep(0.01)  # slow enough that the signal lands mid-epoch

rng = np.random.default_rng(0)
x, y = rng.standard_normal((4096, 2)).astype("float32"), rng.integers(0, 3, 4096)
model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
model.compile("adam", "sparse_categorical_crossentropy")
steps = Steps()
history = model.fit(x, y, epochs=1000, batch_size=8, verbose=0, callbacks=[steps])
same = all(np.array_equal(p.numpy(), w) for p, w in zip(model.parameters(), steps.last))
print(json.dumps({"interrupted": history.interrupted, "epochs": len(history.epoch), "steps": steps.count,
                  "same": same}), flush=True)
"""


def test_ctrl_c_in_a_real_process_returns_the_history_and_the_last_step_s_weights(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env, cwd=tmp_path)
    try:
        assert child.stdout.readline().strip() == "ready"
        os.kill(child.pid, signal.SIGINT)  # Ctrl-C
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode == 0, err[-2000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["interrupted"] and result["epochs"] == 0 and result["steps"] >= 5
    assert result["same"]  # the weights of the last finished step


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
    # Not a terminal (a log file, a pipe): each epoch is one line, written once at its end.
    model.fit(x, y, epochs=2, batch_size=8, verbose=1)
    lines = [line for line in re.split(r"[\r\n]", capsys.readouterr().err) if line.strip()]
    assert [line.split(":")[0] for line in lines] == ["Epoch 1/2", "Epoch 2/2"], lines
    assert all("5/5" in line and "loss=" in line for line in lines)
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
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        model.compile("adam", metrics=["auc"])
    model.compile("adam")
    with pytest.raises(ag.ShapeError, match="same number of samples"):
        model.fit(x, y[:5], verbose=0)
    with pytest.raises(ag.ShapeError, match=r"Linear\(2, 16\) at \[0\] expects input \(N, 2\), got \(10, 3\)"):
        model.fit(np.zeros((10, 3)), y, verbose=0)
