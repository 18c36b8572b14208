"""autograd_cnn.keras's optimizers, losses, callbacks, utils, datasets and files, without real Keras:
the formulas against NumPy written from Keras's definitions, and every bad input's message.
(tests/test_keras_reference.py compares the same against real Keras where it is installed.)"""
from __future__ import annotations

import copy
import io
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import data, keras
from autograd_cnn.errors import ArgumentError, ArgumentTypeError, CheckpointError, ShapeError, UsageError
from autograd_cnn.keras import layers, losses, optimizers, saving
from autograd_cnn.keras.utils import to_categorical
from autograd_cnn.nn import Parameter

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FASHION = SHARED / "fashion-mnist"


def _one_step(opt, w0, grads):
    p = Parameter(w0.copy())
    opt.build([p])
    for g in grads:
        p.grad = ag.tensor(g)
        opt.step()
    return p.numpy()


# --------------------------------------------------------------------------- optimizers


def test_each_optimizer_follows_keras_formula():
    """Three steps of each rule, against the rule written out in NumPy from Keras 3's source."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 3))
    grads = [rng.standard_normal((4, 3)) for _ in range(3)]
    lr, eps = 0.01, 1e-7

    w, m = w0.copy(), np.zeros_like(w0)  # SGD with momentum: the velocity holds the rate
    for g in grads:
        m = 0.9 * m - lr * g
        w += m
    assert np.allclose(_one_step(optimizers.SGD(lr, momentum=0.9), w0, grads), w, atol=1e-12)

    w, v = w0.copy(), np.zeros_like(w0)  # RMSprop: epsilon inside the root
    for g in grads:
        v = 0.9 * v + 0.1 * g * g
        w -= lr * g / np.sqrt(v + eps)
    assert np.allclose(_one_step(optimizers.RMSprop(lr), w0, grads), w, atol=1e-12)

    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)  # Adam: epsilon outside, not bias-corrected
    for t, g in enumerate(grads, 1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w -= lr * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * m / (np.sqrt(v) + eps)
    assert np.allclose(_one_step(optimizers.Adam(lr), w0, grads), w, atol=1e-12)

    w, a, d = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)  # Adadelta
    for g in grads:
        a = 0.95 * a + 0.05 * g * g
        delta = np.sqrt(d + eps) / np.sqrt(a + eps) * g
        d = 0.95 * d + 0.05 * delta * delta
        w -= lr * delta
    assert np.allclose(_one_step(optimizers.Adadelta(lr), w0, grads), w, atol=1e-12)

    w, acc = w0.copy(), np.full_like(w0, 0.1)  # Adagrad
    for g in grads:
        acc += g * g
        w -= lr * g / np.sqrt(acc + eps)
    assert np.allclose(_one_step(optimizers.Adagrad(lr), w0, grads), w, atol=1e-12)

    w = w0.copy()  # decoupled weight decay, before the update; clipnorm on each gradient
    for g in grads:
        w -= w * 0.1 * lr
        g = g * 0.5 / max(np.linalg.norm(g), 0.5)
        w -= lr * g
    assert np.allclose(_one_step(optimizers.SGD(lr, weight_decay=0.1, clipnorm=0.5), w0, grads), w, atol=1e-12)


def test_keras_defaults():
    assert optimizers.Adadelta().learning_rate == 0.001  # Keras 3's, not Keras 2's 1.0
    assert optimizers.SGD().learning_rate == 0.01
    adam = optimizers.Adam()
    assert adam.get_config()["epsilon"] == 1e-7 and adam.get_config()["beta_1"] == 0.9
    assert optimizers.AdamW().get_config()["weight_decay"] == 0.004
    assert optimizers.RMSprop().get_config()["rho"] == 0.9


def test_get_names_configs_and_objects():
    assert type(optimizers.get("rmsprop")) is optimizers.RMSprop
    assert type(optimizers.get("Adam")) is optimizers.Adam
    made = optimizers.get({"class_name": "SGD", "config": {"learning_rate": 0.5, "momentum": 0.9}})
    assert made.learning_rate == 0.5 and made.get_config()["momentum"] == 0.9
    again = optimizers.get(optimizers.serialize(made))
    assert again.get_config() == made.get_config()
    same = optimizers.Adam()
    assert optimizers.get(same) is same
    with pytest.raises(ArgumentError, match="unknown optimizer 'adamax'.*sgd, rmsprop, adam, adamw, adadelta, adagrad"):
        optimizers.get("adamax")
    with pytest.raises(ArgumentTypeError, match="cannot make an optimizer of 3"):
        optimizers.get(3)


def test_learning_rate_reads_and_sets_before_and_after_binding():
    opt = optimizers.Adam(learning_rate=1e-3)
    opt.learning_rate = 0.5
    p = Parameter(np.zeros(3))
    opt.build([p])
    assert opt.learning_rate == 0.5 and opt.param_groups[0]["lr"] == 0.5
    opt.learning_rate = 0.25
    assert opt.lr == 0.25 and opt.param_groups[0]["lr"] == 0.25
    with pytest.raises(ArgumentError, match="Adam: learning_rate must be a finite number >= 0, got -1"):
        opt.learning_rate = -1


def test_bad_optimizer_arguments():
    with pytest.raises(ArgumentError, match="learning_rate must be a finite number >= 0"):
        optimizers.SGD(learning_rate=-0.1)
    with pytest.raises(ArgumentError, match="at most one of clipnorm, clipvalue and global_clipnorm"):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ArgumentError, match="use_ema=True is not available"):
        optimizers.Adam(use_ema=True)
    with pytest.raises(ArgumentTypeError, match="unknown argument 'lr'; its arguments are learning_rate"):
        optimizers.RMSprop(lr=0.1)
    with pytest.raises(ArgumentError, match="rho must be a finite number in \\[0, 1\\)"):
        optimizers.RMSprop(rho=1.0)
    with pytest.raises(UsageError, match="not bound to any parameters yet; pass it to model.compile"):
        optimizers.SGD().step()


def test_state_round_trip_and_iterations():
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(5) for _ in range(4)]
    p, q = Parameter(np.ones(5)), Parameter(np.ones(5))
    a, b = optimizers.Adam(0.1), optimizers.Adam(0.1)
    a.build([p])
    for g in grads[:2]:
        p.grad = ag.tensor(g)
        a.step()
    assert a.iterations == 2
    b.build([q])
    q.data[...] = p.data
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # (a state dict's arrays are the optimizer's own)
    for g in grads[2:]:
        p.grad, q.grad = ag.tensor(g), ag.tensor(g)
        a.step()
        b.step()
    assert np.array_equal(p.numpy(), q.numpy()) and b.iterations == 4


def test_compile_binds_a_keras_optimizer_and_trains():
    model = keras.Sequential([layers.Dense(4, activation="relu", input_shape=(3,)), layers.Dense(2)])
    opt = optimizers.SGD(learning_rate=0.1)
    model.compile(optimizer=opt, loss=losses.MeanSquaredError())
    x = np.random.default_rng(0).random((8, 3)).astype("float32")
    y = np.zeros((8, 2), "float32")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert opt.built and opt.iterations == 5
    assert model.evaluate(x, y, verbose=0) < before


# --------------------------------------------------------------------------- losses


def test_losses_against_their_definitions():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 4)).astype("float32")
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = rng.integers(0, 4, 5)
    onehot = np.eye(4, dtype="float32")[labels]
    want = -np.log(p[np.arange(5), labels])
    assert np.allclose(losses.categorical_crossentropy(onehot, p).numpy(), want, atol=1e-6)
    assert np.allclose(losses.categorical_crossentropy(onehot, z, from_logits=True).numpy(), want, atol=1e-5)
    assert np.allclose(losses.sparse_categorical_crossentropy(labels, p).numpy(), want, atol=1e-6)
    assert np.allclose(losses.sparse_categorical_crossentropy(labels[:, None], z, from_logits=True).numpy(), want,
                       atol=1e-5)
    smoothed = onehot * 0.9 + 0.1 / 4
    assert np.allclose(losses.CategoricalCrossentropy(label_smoothing=0.1)(onehot, p).numpy(),
                       (-(smoothed * np.log(p)).sum(1)).mean(), atol=1e-6)
    t = rng.integers(0, 2, (5, 4)).astype("float32")
    s = 1 / (1 + np.exp(-z))
    bce = -(t * np.log(s) + (1 - t) * np.log(1 - s)).mean(1)
    assert np.allclose(losses.binary_crossentropy(t, s).numpy(), bce, atol=1e-5)
    assert np.allclose(losses.BinaryCrossentropy(from_logits=True)(t, z).numpy(), bce.mean(), atol=1e-5)
    assert np.allclose(losses.mse(onehot, p).numpy(), ((onehot - p) ** 2).mean(1), atol=1e-7)
    assert np.allclose(losses.MeanSquaredError(reduction="sum")(onehot, p).numpy(), ((onehot - p) ** 2).mean(1).sum())
    w = rng.random(5).astype("float32")
    assert np.allclose(losses.CategoricalCrossentropy()(onehot, p, sample_weight=w).numpy(), (want * w).mean(),
                       atol=1e-6)


def test_losses_differentiate():
    z = ag.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([0, 1, 3]), z).backward()
    p = np.exp(z.numpy()) / np.exp(z.numpy()).sum(1, keepdims=True)
    assert np.allclose(z.grad.numpy(), (p - np.eye(4)[[0, 1, 3]]) / 3)


def test_losses_get_and_bad_inputs():
    assert losses.get("mse") is losses.mean_squared_error
    assert losses.get("categorical_crossentropy") is losses.categorical_crossentropy
    assert isinstance(losses.get("SparseCategoricalCrossentropy"), losses.SparseCategoricalCrossentropy)
    made = losses.get({"class_name": "CategoricalCrossentropy",
                       "config": {"from_logits": True, "label_smoothing": 0.1}})
    assert made.from_logits and made.label_smoothing == 0.1
    with pytest.raises(ArgumentError, match="unknown loss 'hinge'; the known ones are categorical_crossentropy"):
        losses.get("hinge")
    with pytest.raises(ShapeError, match="needs class indices shaped \\(5\\).*use categorical_crossentropy"):
        losses.sparse_categorical_crossentropy(np.eye(4)[[0, 1, 2, 3, 0]], np.ones((5, 4)) / 4)
    with pytest.raises(ShapeError, match="must have the same shape; for class indices use sparse"):
        losses.categorical_crossentropy(np.array([0, 1]), np.ones((2, 3)) / 3)
    with pytest.raises(ArgumentError, match="class indices from 0 to 7, but y_pred has 4 classes"):
        losses.sparse_categorical_crossentropy(np.array([0, 7]), np.ones((2, 4)) / 4)
    with pytest.raises(ArgumentError, match="reduction must be one of"):
        losses.CategoricalCrossentropy(reduction="average")


def test_compile_takes_keras_losses_in_their_order():
    """A loss function or object in compile is called as Keras calls it, loss(y_true, y_pred)."""
    rng = np.random.default_rng(0)
    x = rng.random((6, 3)).astype("float32")
    y = rng.integers(0, 2, (6, 1)).astype("float32")
    model = keras.Sequential([layers.Dense(1, activation="sigmoid", input_shape=(3,))])
    model.compile(optimizer="sgd", loss=losses.BinaryCrossentropy(label_smoothing=0.2))
    out = model.predict(x, verbose=0)
    t = y * 0.8 + 0.1
    want = -(t * np.log(out) + (1 - t) * np.log(1 - out)).mean()
    assert np.isclose(model.evaluate(x, y, verbose=0), want, atol=1e-5)


# --------------------------------------------------------------------------- utils


def test_to_categorical_as_keras():
    assert np.array_equal(to_categorical([0, 2, 1], 3), np.eye(3)[[0, 2, 1]])
    out = to_categorical(np.array([[1], [3]]))  # (N, 1) labels give (N, classes); classes = max + 1
    assert out.shape == (2, 4) and out.dtype == np.float64 and out[1, 3] == 1
    assert to_categorical(np.array([[0, 1], [1, 0]]), 2).shape == (2, 2, 2)
    assert to_categorical(ag.tensor(np.array([1, 0])), 2).tolist() == [[0, 1], [1, 0]]
    with pytest.raises(ArgumentError, match="class indices from -1 to 2, outside \\[0, 2\\]"):
        to_categorical([-1, 2], 3)
    with pytest.raises(ArgumentError, match="outside \\[0, 1\\] for num_classes=2"):
        to_categorical([0, 2], 2)
    with pytest.raises(ArgumentTypeError, match="whole numbers.*with fractions"):
        to_categorical([0.5, 1.0])


def _lecture_cnn():
    inputs = keras.Input(shape=(12, 12, 1))
    x = layers.Conv2D(filters=4, kernel_size=3, activation="relu")(inputs)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def test_plot_model_draws_each_layer_with_shapes(tmp_path):
    model = _lecture_cnn()
    picture = keras.utils.plot_model(model, to_file=tmp_path / "model.dot", show_shapes=True, show_layer_names=True)
    text = (tmp_path / "model.dot").read_text()
    assert text == picture.source
    conv, flat, dense = (model.layers[i].name for i in (1, 2, 3))
    assert f"<B>{conv}</B> (Conv2D)" in text and "Output shape: (None, 10, 10, 4)" in text
    assert f"<B>{dense}</B> (Dense)" in text and "Input shape: (None, 400)" in text
    assert text.count("->") == 3  # input -> conv -> flatten -> dense
    with pytest.raises(ValueError, match="cannot tell the format"):
        keras.utils.plot_model(model, to_file=tmp_path / "model.jpeg")


@pytest.mark.skipif(not __import__("shutil").which("dot"), reason="Graphviz's dot is not installed")
def test_plot_model_writes_png(tmp_path):
    keras.utils.plot_model(_lecture_cnn(), to_file=tmp_path / "m.png", show_shapes=True)
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- datasets


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").is_file(),
                    reason="the shared Fashion-MNIST files are not on this machine")
def test_fashion_mnist_in_keras_shapes(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_ENV, str(SHARED))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == y_train.dtype == np.uint8 and y_test.shape == (10000,)
    assert set(np.unique(y_train)) == set(range(10))


def test_mnist_offline_says_where_it_looked(offline):
    with pytest.raises(data.DataError) as info:
        keras.datasets.mnist.load_data()
    message = str(info.value)
    assert message.startswith("keras.datasets.mnist.load_data(): mnist: could not find")
    assert str(offline / "cache" / "autograd_cnn" / "mnist") in message
    assert "AUTOGRAD_CNN_DATA" in message and "load_sample()" in message


def test_cifar10_labels_are_a_column(monkeypatch, tmp_path):
    """Keras gives CIFAR-10's labels shaped (N, 1); the archive is read by data's reader."""
    path = tmp_path / "cifar-10-python.tar.gz"
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as archive:
        for member in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            raw = pickle.dumps({b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [3, 7]})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    monkeypatch.setattr(data, "fetch", lambda name, **_: {"cifar-10-python.tar.gz": path})
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    assert x_train.shape == (10, 32, 32, 3) and y_train.shape == (10, 1) and y_test.shape == (2, 1)
    assert y_train.dtype == np.uint8 and y_train[:2, 0].tolist() == [3, 7]


# --------------------------------------------------------------------------- callbacks


def _trained(callbacks, epochs=6, **fit):
    rng = np.random.default_rng(0)
    x = rng.random((16, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 10, 16)
    model = _lecture_cnn()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, callbacks=callbacks, **fit)
    return model, history


def test_early_stopping_baseline_and_start_from_epoch():
    stop = keras.callbacks.EarlyStopping(monitor="loss", baseline=-1.0, patience=2)  # a loss never below -1
    _, history = _trained([stop])
    assert len(history.epoch) == 2
    late = keras.callbacks.EarlyStopping(monitor="loss", baseline=-1.0, patience=1, start_from_epoch=3)
    _, history = _trained([late])
    assert len(history.epoch) == 4
    with pytest.raises(ArgumentError, match="patience must be an int >= 0"):
        keras.callbacks.EarlyStopping(patience=-1)


def test_model_checkpoint_writes_keras_files(tmp_path):
    weights = keras.callbacks.ModelCheckpoint(tmp_path / "w-{epoch}.weights.h5", monitor="loss",
                                              save_weights_only=True)
    whole = keras.callbacks.ModelCheckpoint(str(tmp_path / "best.keras"), monitor="loss", save_best_only=True)
    model, _ = _trained([weights, whole], epochs=2)
    fresh = _lecture_cnn()
    saving.load_weights(fresh, tmp_path / "w-2.weights.h5")
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        assert np.array_equal(a, b)
    loaded = keras.models.load_model(tmp_path / "best.keras")
    assert [type(layer).__name__ for layer in loaded.layers] == ["InputLayer", "Conv2D", "Flatten", "Dense"]
    with pytest.raises(ArgumentError, match="must end in .weights.h5"):
        keras.callbacks.ModelCheckpoint(tmp_path / "w.npz", save_weights_only=True)


# --------------------------------------------------------------------------- files


def test_save_and_load_model_here(tmp_path):
    model = _lecture_cnn()
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = np.random.default_rng(0).random((3, 12, 12, 1)).astype("float32")
    saving.save_model(model, tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert isinstance(loaded.optimizer, optimizers.Adam) and loaded.optimizer.learning_rate == 0.01
    seq = keras.Sequential([layers.Dense(5, activation="relu", input_shape=(4,)), layers.Dense(2)])
    saving.save_model(seq, tmp_path / "s.keras")
    again = keras.models.load_model(tmp_path / "s.keras", compile=False)
    xs = np.ones((2, 4), "float32")
    assert np.allclose(again.predict(xs, verbose=0), seq.predict(xs, verbose=0), atol=1e-6)


def test_weights_of_another_model_are_refused(tmp_path):
    saving.save_weights(_lecture_cnn(), tmp_path / "cnn.weights.h5")
    other = keras.Sequential([layers.Dense(5, input_shape=(4,))])
    with pytest.raises(CheckpointError, match="the weights under /layers/dense do not fit layer .*kernel must have "
                                              "Keras's shape \\(4, 5\\), got \\(400, 10\\)"):
        saving.load_weights(other, tmp_path / "cnn.weights.h5")
    deeper = keras.Sequential([layers.Conv2D(4, 3, input_shape=(12, 12, 1)), layers.Conv2D(2, 3)])
    with pytest.raises(CheckpointError, match="no weights for layer .*\\(Conv2D, expected under /layers/conv2d_1\\)"):
        saving.load_weights(deeper, tmp_path / "cnn.weights.h5")
    with pytest.raises(ArgumentError, match="must end in .weights.h5"):
        saving.save_weights(other, tmp_path / "w.h5")
    with pytest.raises(CheckpointError, match="no file"):
        keras.models.load_model(tmp_path / "missing.keras")
    (tmp_path / "plain.keras").write_text("not a zip")
    with pytest.raises(CheckpointError, match="is not a .keras file"):
        keras.models.load_model(tmp_path / "plain.keras")


def test_missing_h5py_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="pip install 'autograd-cnn\\[keras\\]'"):
        saving.save_weights(_lecture_cnn(), tmp_path / "w.weights.h5")
    assert not (tmp_path / "w.weights.h5").exists()


def test_model_methods_write_keras_files_and_npz(tmp_path):
    """model.save("x.keras") / save_weights / load_weights, and keras.models.load_model, as in Keras."""
    pytest.importorskip("h5py")

    def build():
        return keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="relu"), layers.Dense(2)])

    model = build()
    x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    model.save(tmp_path / "m.npz")                      # any other suffix: this package's state dict
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    other = build()
    assert np.abs(other.predict(x, verbose=0) - model.predict(x, verbose=0)).max() > 1e-3
    other.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_allclose(other.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert set(ag.load(tmp_path / "m.npz")) == set(model.state_dict())  # keyed by this build's layer names


@pytest.mark.parametrize("make", [lambda: optimizers.Adam(), lambda: optimizers.RMSprop(momentum=0.3, centered=True),
                                  lambda: optimizers.SGD(momentum=0.9), lambda: optimizers.Adagrad()])
def test_a_saved_model_trains_on_from_its_optimizer_state(tmp_path, make):
    pytest.importorskip("h5py")
    rng = np.random.default_rng(2)
    x, y = rng.random((8, 5, 5, 1)).astype("float32"), rng.integers(0, 2, 8)

    def build() -> keras.Model:
        inputs = keras.Input(shape=(5, 5, 1))
        h = layers.Flatten()(layers.Conv2D(2, 3, activation="relu")(inputs))
        model = keras.Model(inputs, layers.Dense(2, activation="softmax")(h))
        model.compile(make(), "sparse_categorical_crossentropy")
        return model

    model = build()
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    resumed = keras.models.load_model(path)
    assert resumed.optimizer.iterations == model.optimizer.iterations == 2
    for m in (model, resumed):
        m.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(resumed.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_optimizer_variables_that_do_not_fit_the_model_are_refused(tmp_path):
    pytest.importorskip("h5py")

    def build(units: int) -> keras.Model:
        inputs = keras.Input(shape=(3,))
        model = keras.Model(inputs, layers.Dense(units)(inputs))
        model.compile(optimizers.Adam(), "mse")
        return model

    small = build(2)
    small.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), verbose=0)
    arrays = small.optimizer.keras_variables(saving.trainable_slots(small))
    other = build(4)
    with pytest.raises(CheckpointError, match=r"momentum for a weight of Keras's shape \(3, 4\) has shape \(3, 2\)"):
        other.optimizer.set_keras_variables(saving.trainable_slots(other), arrays, "load_model('m.keras')")
    with pytest.raises(CheckpointError, match="holds 5 optimizer variables"):
        other.optimizer.set_keras_variables(saving.trainable_slots(other), arrays[:5], "load_model('m.keras')")


def test_model_checkpoint_every_few_batches(tmp_path):
    inputs = keras.Input(shape=(3,))
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(inputs))
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = np.ones((10, 3), "float32"), np.zeros(10, int)
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch}-{batch}.weights.h5"),
                                                 save_weights_only=True, save_freq=2)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[checkpoint])  # 3 batches an epoch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w-1-2.weights.h5", "w-2-1.weights.h5", "w-2-3.weights.h5"]
    with pytest.raises(ArgumentError, match="save_freq must be 'epoch' or a number of batches, got 'batch'"):
        keras.callbacks.ModelCheckpoint("m.keras", save_freq="batch")
    with pytest.raises(ArgumentError, match="save_best_only compares the epoch's figures"):
        keras.callbacks.ModelCheckpoint("m.keras", save_freq=5, save_best_only=True)
    late = keras.callbacks.ModelCheckpoint(str(tmp_path / "m-{loss:.2f}.keras"), save_freq=2)
    with pytest.raises(ArgumentError, match=r"can use \{epoch\} and \{batch\} only"):
        model.fit(x, y, verbose=0, callbacks=[late])
