"""autograd_cnn.keras against real Keras 3 (run on its torch backend): optimizer steps, losses,
to_categorical, .keras and .weights.h5 files both ways, and the slides' parameter counts.
Skipped where Keras is not installed."""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: CI installs it with torch

import numpy as np
import pytest
from slides_models import lecture_cnn

K = pytest.importorskip("keras")

import autograd_cnn as ag  # noqa: E402
from autograd_cnn import keras  # noqa: E402
from autograd_cnn.keras import layers, losses, optimizers, saving  # noqa: E402
from autograd_cnn.nn import Parameter  # noqa: E402

OPTIMIZERS = [
    ("SGD", {}), ("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("RMSprop", {}), ("RMSprop", {"momentum": 0.5, "centered": True}),
    ("Adam", {}), ("AdamW", {}), ("Adadelta", {}), ("Adadelta", {"learning_rate": 1.0}), ("Adagrad", {}),
    ("Adam", {"clipnorm": 0.5}), ("SGD", {"global_clipnorm": 0.5}),
    ("RMSprop", {"clipvalue": 0.3, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("name, settings", OPTIMIZERS, ids=[f"{n}{s}" for n, s in OPTIMIZERS])
def test_optimizer_steps_as_keras(name, settings):
    """Three steps on the same float32 weights and gradients give Keras's weights."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((5, 4)).astype("float32")
    grads = [rng.standard_normal((5, 4)).astype("float32") for _ in range(3)]
    theirs, variable = getattr(K.optimizers, name)(**settings), K.Variable(w0.copy())
    ours, p = getattr(optimizers, name)(**settings), Parameter(w0.copy())
    ours.build([p])
    for g in grads:
        theirs.apply_gradients([(K.ops.convert_to_tensor(g), variable)])
        p.grad = ag.tensor(g.copy())
        ours.step()
    assert np.allclose(p.numpy(), K.ops.convert_to_numpy(variable), atol=1e-6)
    assert ours.iterations == int(K.ops.convert_to_numpy(theirs.iterations))


def _pair_of_models():
    """The same small lecture-style CNN, in Keras and here, with Keras's weights in both."""
    def build(lib):
        inputs = lib.Input(shape=(8, 8, 1))
        x = lib.layers.Conv2D(filters=4, kernel_size=3, activation="relu")(inputs)
        x = lib.layers.Flatten()(x)
        outputs = lib.layers.Dense(3, activation="softmax")(x)
        return lib.Model(inputs=inputs, outputs=outputs)

    theirs, ours = build(K), build(keras)
    ours.set_weights(theirs.get_weights())
    return theirs, ours


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adam", "adadelta"])
@pytest.mark.parametrize("labels", ["sparse", "one-hot"])
def test_one_training_step_gives_keras_weights(optimizer, labels):
    """compile with the names the slides use, then one fit step on one batch: Keras's new weights."""
    rng = np.random.default_rng(1)
    x = rng.random((16, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 16)
    loss = "sparse_categorical_crossentropy"
    if labels == "one-hot":
        y, loss = keras.utils.to_categorical(y, 3), "categorical_crossentropy"
    theirs, ours = _pair_of_models()
    for model in (theirs, ours):
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert np.allclose(a, b, atol=1e-5)


def _two_input_model(lib):
    image, extra = lib.Input(shape=(6, 6, 1), name="image"), lib.Input(shape=(3,), name="extra")
    x = lib.layers.Flatten()(lib.layers.Conv2D(filters=2, kernel_size=3, activation="relu")(image))
    x = lib.layers.Concatenate()([x, lib.layers.Dense(4, activation="relu")(extra)])
    return lib.Model(inputs=[image, extra], outputs=lib.layers.Dense(3, activation="softmax")(x))


@pytest.mark.parametrize("as_dict", [False, True])
def test_a_model_of_two_inputs_fits_evaluates_and_predicts_as_keras(as_dict):
    """x as a list of one array per input, or a dict by input name: Keras's weights after two fit
    steps, its loss and accuracy from evaluate, and its predictions."""
    rng = np.random.default_rng(5)
    image, extra = rng.random((24, 6, 6, 1)).astype("float32"), rng.random((24, 3)).astype("float32")
    y = rng.integers(0, 3, 24)
    x = {"extra": extra, "image": image} if as_dict else [image, extra]
    theirs, ours = _two_input_model(K), _two_input_model(keras)
    ours.set_weights(theirs.get_weights())
    results = []
    for model in (theirs, ours):
        model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0)
        results.append((model.evaluate(x, y, verbose=0), model.predict(x, verbose=0)))
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-4)
    np.testing.assert_allclose(results[1][1], results[0][1], atol=1e-5)


RESUMED = [("Adam", {}), ("SGD", {"momentum": 0.9}), ("RMSprop", {"momentum": 0.5, "centered": True}),
           ("Adadelta", {"learning_rate": 1.0}), ("Adagrad", {})]


def _resumable(lib, name: str, settings: dict):
    inputs = lib.Input(shape=(6, 6, 1))
    # Batch norm first: after a conv its mean would cancel the conv's bias, whose gradient is then
    # rounding noise that Adam and RMSprop scale up to a whole step, either way.
    x = lib.layers.BatchNormalization()(inputs)
    x = lib.layers.Conv2D(filters=3, kernel_size=3, activation="relu")(x)
    x = lib.layers.Flatten()(x)
    model = lib.Model(inputs=inputs, outputs=lib.layers.Dense(3, activation="softmax")(x))
    model.compile(optimizer=getattr(lib.optimizers, name)(**settings), loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("name, settings", RESUMED, ids=[f"{n}{s}" for n, s in RESUMED])
@pytest.mark.parametrize("writer", ["keras", "ours"])
def test_a_keras_file_carries_the_optimizer_state_both_ways(tmp_path, writer, name, settings):
    """Two fit steps, save, load in the other library, one more step in each: Keras's weights, as
    if training had not stopped (the moments and the step count travel in the file)."""
    rng = np.random.default_rng(7)
    x, y = rng.random((8, 6, 6, 1)).astype("float32"), rng.integers(0, 3, 8)
    theirs, ours = _resumable(K, name, settings), _resumable(keras, name, settings)
    ours.set_weights(theirs.get_weights())
    for model in (theirs, ours):
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    path = str(tmp_path / "m.keras")
    if writer == "keras":
        theirs.save(path)
        resumed, going_on = keras.models.load_model(path), theirs
    else:
        ours.save(path)
        resumed, going_on = K.models.load_model(path), ours
    assert resumed.optimizer.iterations == 2 or int(resumed.optimizer.iterations.numpy()) == 2
    for model in (resumed, going_on):
        model.fit(x[:4], y[:4], batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(resumed.get_weights(), going_on.get_weights()):
        np.testing.assert_allclose(a, b, atol=2e-5)


def test_model_checkpoint_every_few_batches_writes_the_files_keras_writes(tmp_path):
    """save_freq=3 over 2 epochs of 4 batches: the same files, at the same batches, as Keras."""
    rng = np.random.default_rng(8)
    x, y = rng.random((16, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 16)
    written = {}
    for name, lib in (("keras", K), ("ours", keras)):
        folder = tmp_path / name
        theirs_or_ours = _pair_of_models()[0 if lib is K else 1]
        theirs_or_ours.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        checkpoint = lib.callbacks.ModelCheckpoint(str(folder / "ckpt-{epoch}-{batch}.weights.h5"),
                                                   save_weights_only=True, save_freq=3)
        theirs_or_ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[checkpoint])
        written[name] = sorted(p.name for p in folder.iterdir())
    assert written["ours"] == written["keras"] == ["ckpt-1-3.weights.h5", "ckpt-2-2.weights.h5"]


def test_objects_from_keras_namespaces_train_as_keras():
    """An optimizer object made before compile and a loss function, as the mnist_cnn example writes them."""
    rng = np.random.default_rng(2)
    x = rng.random((16, 8, 8, 1)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, 16), 3)
    theirs, ours = _pair_of_models()
    theirs.compile(optimizer=K.optimizers.Adadelta(learning_rate=1.0), loss=K.losses.categorical_crossentropy)
    ours.compile(optimizer=keras.optimizers.Adadelta(learning_rate=1.0), loss=keras.losses.categorical_crossentropy)
    for model in (theirs, ours):
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert np.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("make", [lambda lib: lib.losses.CategoricalCrossentropy(label_smoothing=0.1),
                                  lambda lib: lib.losses.MeanSquaredError()], ids=["smoothed", "mse"])
def test_loss_objects_in_compile_train_as_keras(make):
    """Losses that compile calls in Keras's order, loss(y_true, y_pred): one-hot labels, one SGD step."""
    rng = np.random.default_rng(8)
    x = rng.random((16, 8, 8, 1)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, 16), 3).astype("float32")
    theirs, ours = _pair_of_models()
    for model, lib in ((theirs, K), (ours, keras)):
        model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.5), loss=make(lib))
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert np.allclose(a, b, atol=1e-5)


def test_losses_equal_keras():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 4)).astype("float32")
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = rng.integers(0, 4, 6)
    onehot = np.eye(4, dtype="float32")[labels]
    t = rng.integers(0, 2, (6, 4)).astype("float32")
    s = 1 / (1 + np.exp(-z))
    w = rng.random(6).astype("float32")
    cases = []
    for from_logits, pred in ((False, p), (True, z)):
        for smoothing in (0.0, 0.1):
            cases.append(("categorical_crossentropy", (onehot, pred), dict(from_logits=from_logits,
                                                                           label_smoothing=smoothing)))
            cases.append(("CategoricalCrossentropy", (onehot, pred), dict(from_logits=from_logits,
                                                                          label_smoothing=smoothing)))
        cases.append(("sparse_categorical_crossentropy", (labels, pred), dict(from_logits=from_logits)))
        cases.append(("SparseCategoricalCrossentropy", (labels[:, None], pred), dict(from_logits=from_logits)))
    for from_logits, pred in ((False, s), (True, z)):
        cases.append(("binary_crossentropy", (t, pred), dict(from_logits=from_logits, label_smoothing=0.2)))
        cases.append(("BinaryCrossentropy", (t, pred), dict(from_logits=from_logits)))
    cases += [("mean_squared_error", (onehot, p), {}), ("MeanSquaredError", (onehot, p), {})]
    for name, args, settings in cases:
        if name[0].isupper():
            want = getattr(K.losses, name)(**settings)(*args)
            got = getattr(losses, name)(**settings)(*args)
        else:
            want = getattr(K.losses, name)(*args, **settings)
            got = getattr(losses, name)(*args, **settings)
        assert np.allclose(got.numpy(), K.ops.convert_to_numpy(want), atol=1e-5), (name, settings)
    weighted = K.losses.CategoricalCrossentropy()(onehot, p, sample_weight=w)
    assert np.allclose(losses.CategoricalCrossentropy()(onehot, p, sample_weight=w).numpy(),
                       K.ops.convert_to_numpy(weighted), atol=1e-6)
    assert np.allclose(losses.MeanSquaredError(reduction="sum")(onehot, p).numpy(),
                       K.ops.convert_to_numpy(K.losses.MeanSquaredError(reduction="sum")(onehot, p)), atol=1e-6)


def test_to_categorical_equals_keras():
    for labels, classes in (([0, 2, 1], None), ([0, 2, 1], 5), (np.array([[3], [1]]), None),
                            (np.array([[0, 1], [2, 0]]), 3), (np.arange(4, dtype=np.uint8), None)):
        want = K.utils.to_categorical(labels, classes)
        got = keras.utils.to_categorical(labels, classes)
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)


def _keras_functional():
    inputs = K.Input(shape=(8, 8, 1))
    x = K.layers.Conv2D(filters=4, kernel_size=3, activation="relu")(inputs)
    x = K.layers.MaxPool2D(pool_size=2)(x)
    x = K.layers.Conv2D(filters=6, kernel_size=3, padding="same", activation="relu")(x)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.Flatten()(x)
    outputs = K.layers.Dense(3, activation="softmax")(x)
    return K.Model(inputs=inputs, outputs=outputs)


def test_keras_file_written_by_keras_loads_and_predicts_the_same(tmp_path):
    x = np.random.default_rng(3).random((5, 8, 8, 1)).astype("float32")
    functional = _keras_functional()
    functional.compile(optimizer=K.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                       metrics=["accuracy"])
    functional.fit(x, np.arange(5) % 3, epochs=2, verbose=0)  # moving statistics of its own in the BN layer
    functional.save(tmp_path / "f.keras")
    sequential = K.Sequential([K.Input(shape=(6,)), K.layers.Dense(5, activation="relu"), K.layers.Dense(2)])
    sequential.save(tmp_path / "s.keras")
    loaded = keras.models.load_model(tmp_path / "f.keras")
    assert np.allclose(loaded.predict(x, verbose=0), functional.predict(x, verbose=0), atol=1e-4)
    assert isinstance(loaded.optimizer, optimizers.Adam) and np.isclose(loaded.optimizer.learning_rate, 0.01)
    xs = np.random.default_rng(4).random((3, 6)).astype("float32")
    loaded = keras.models.load_model(tmp_path / "s.keras")
    assert isinstance(loaded, keras.Sequential)
    assert np.allclose(loaded.predict(xs, verbose=0), sequential.predict(xs, verbose=0), atol=1e-4)


def test_keras_loads_the_keras_file_written_here(tmp_path):
    x = np.random.default_rng(5).random((5, 8, 8, 1)).astype("float32")
    _, ours = _pair_of_models()
    ours.compile(optimizer=optimizers.RMSprop(learning_rate=0.002), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    saving.save_model(ours, tmp_path / "ours.keras")
    theirs = K.saving.load_model(tmp_path / "ours.keras")
    assert np.allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-4)
    assert type(theirs.optimizer).__name__ == "RMSprop"
    assert np.isclose(float(K.ops.convert_to_numpy(theirs.optimizer.learning_rate)), 0.002)
    sequential = keras.Sequential([layers.Dense(4, activation="relu", input_shape=(3,)), layers.Dense(2)])
    saving.save_model(sequential, tmp_path / "seq.keras")
    xs = np.ones((2, 3), "float32")
    assert np.allclose(K.saving.load_model(tmp_path / "seq.keras").predict(xs, verbose=0),
                       sequential.predict(xs, verbose=0), atol=1e-4)


def test_weights_files_both_ways(tmp_path):
    x = np.random.default_rng(6).random((4, 8, 8, 1)).astype("float32")
    theirs, ours = _pair_of_models()
    fresh_theirs, fresh_ours = _pair_of_models()
    theirs.save_weights(tmp_path / "keras.weights.h5")
    saving.load_weights(fresh_ours, tmp_path / "keras.weights.h5")
    assert np.allclose(fresh_ours.predict(x, verbose=0), theirs.predict(x, verbose=0), atol=1e-4)
    ours.set_weights([w * 1.5 for w in ours.get_weights()])  # something Keras has not seen
    saving.save_weights(ours, tmp_path / "ours.weights.h5")
    fresh_theirs.load_weights(tmp_path / "ours.weights.h5")
    assert np.allclose(fresh_theirs.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-4)


def test_parameter_counts_of_the_slides_models():
    """The slides' dense network and the 800-400-10 MLP, built here and in Keras."""
    def dense(lib, sizes):
        return lib.Sequential([lib.Input(shape=(784,))] + [lib.layers.Dense(n, activation="relu") for n in sizes[:-1]]
                              + [lib.layers.Dense(sizes[-1], activation="softmax")])

    for sizes, total in (((512, 10), 407_050), ((800, 400, 10), 952_410)):
        assert dense(keras, sizes).count_params() == dense(K, sizes).count_params() == total
    for pooling, total in ((True, 104_202), (False, 712_202)):
        assert [lecture_cnn(lib, pooling).count_params() for lib in (K, keras)] == [total, total]


def test_a_graph_of_shared_and_merging_layers_both_ways(tmp_path):
    """Two inputs, one Dense layer used on both, Add and Concatenate: Keras's file here and back."""
    a, b = K.Input(shape=(4,)), K.Input(shape=(4,))
    shared = K.layers.Dense(3)
    joined = K.layers.Concatenate()([K.layers.Add()([shared(a), shared(b)]), a])
    theirs = K.Model(inputs=[a, b], outputs=K.layers.Dense(2)(joined))
    theirs.save(tmp_path / "dag.keras")
    ours = keras.models.load_model(tmp_path / "dag.keras")
    rng = np.random.default_rng(7)
    xa, xb = rng.random((3, 4)).astype("float32"), rng.random((3, 4)).astype("float32")
    want = theirs.predict([xa, xb], verbose=0)
    assert np.allclose(ours([ag.tensor(xa), ag.tensor(xb)]).numpy(), want, atol=1e-4)
    assert ours.count_params() == theirs.count_params()  # the shared layer's weights counted once
    saving.save_model(ours, tmp_path / "back.keras")
    assert np.allclose(K.saving.load_model(tmp_path / "back.keras").predict([xa, xb], verbose=0), want, atol=1e-4)
