"""keras.Model and keras.Sequential: graphs, summaries, whole-model weights against real Keras,
training through the one Trainer, and bad models refused where they are made."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
from slides_models import lecture_cnn

import autograd_cnn as ag
from autograd_cnn import keras
from autograd_cnn.errors import ArgumentError, ShapeError
from autograd_cnn.keras import layers


def _real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def dag(lib):
    """Two inputs, a shared layer, Add and Concatenate, two outputs, a BatchNormalization."""
    a, b = lib.Input(shape=(6,)), lib.Input(shape=(6,))
    shared = lib.layers.Dense(5, activation="tanh")
    x, y = shared(a), shared(b)
    s = lib.layers.Add()([x, y])
    c = lib.layers.Concatenate()([s, lib.layers.Dense(3)(a)])
    c = lib.layers.BatchNormalization()(c)
    return lib.Model(inputs=[a, b], outputs=[lib.layers.Dense(2, activation="softmax")(c), s])


@pytest.mark.parametrize("build, total", [
    (lambda: lecture_cnn(keras), 104_202),
    (lambda: lecture_cnn(keras, pool=False), 712_202),
    (lambda: keras.Sequential([layers.Dense(512, activation="relu", input_shape=(784,)),
                               layers.Dense(10, activation="softmax")]), 407_050),
    (lambda: keras.Sequential([keras.Input(shape=(784,)), layers.Dense(800, activation="relu"),
                               layers.Dense(400, activation="relu"), layers.Dense(10, activation="softmax")]),
     952_410),
])
def test_lecture_models_count_as_on_the_slides(build, total):
    model = build()
    lines = []
    model.summary(print_fn=lines.append)
    assert model.count_params() == total
    assert f"Total params: {total:,}" in lines[0]


def _summaries(build) -> tuple[str, str]:
    """Keras's summary and ours of the model ``build(lib)`` makes, each library's names counted afresh."""
    real = _real_keras()
    texts = []
    for lib in (real, keras):
        lib.backend.clear_session()
        lines = []
        build(lib).summary(print_fn=lines.append)
        texts.append("\n".join(lines).rstrip("\n"))  # Keras hands print_fn a last newline
    return texts[0], texts[1]


def test_summary_is_keras_3s_table():
    theirs, mine = _summaries(lecture_cnn)
    assert mine == theirs
    assert mine.splitlines()[0] == 'Model: "functional"'


def test_graph_summary_has_a_connected_to_column_like_keras():
    theirs, mine = _summaries(dag)
    assert "Connected to" in mine
    assert mine == theirs


@pytest.mark.parametrize("build", [lecture_cnn, dag])
def test_weights_from_real_keras_give_the_same_predictions(build):
    real = _real_keras()
    theirs, mine = build(real), build(keras)
    rng = np.random.default_rng(0)
    weights = [w + rng.normal(0, 0.1, w.shape).astype("float32") for w in theirs.get_weights()]
    weights = [np.abs(w) + 0.5 if i in _variances(theirs) else w for i, w in enumerate(weights)]
    theirs.set_weights(weights)
    mine.set_weights(weights)
    assert [w.shape for w in mine.get_weights()] == [w.shape for w in theirs.get_weights()]
    shapes = [tuple(t.shape[1:]) for t in theirs.inputs]
    xs = [rng.normal(size=(4,) + s).astype("float32") for s in shapes]
    want = theirs.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    got = mine(*[[ag.tensor(x) for x in xs]] if len(xs) > 1 else [ag.tensor(xs[0])])
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-4, atol=1e-4)


def _variances(model) -> set:
    index, out = 0, set()
    for layer in model.layers:
        for w in layer.weights:
            if "variance" in w.path if hasattr(w, "path") else False:
                out.add(index)
            index += 1
    return out


def test_a_shared_layer_shares_its_weights():
    a = keras.Input(shape=(3,))
    dense = layers.Dense(3)
    model = keras.Model(a, dense(dense(a)))
    assert model.count_params() == 12 and len(model.layers) == 2
    x = ag.randn(2, 3)
    w, b = dense.kernel.numpy(), dense.bias.numpy()
    np.testing.assert_allclose(model(x).numpy(), (x.numpy() @ w.T + b) @ w.T + b, rtol=1e-5)


def test_sequential_add_with_input_shape_builds_at_once():
    model = keras.Sequential()
    model.add(layers.Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(layers.MaxPooling2D(pool_size=(2, 2)))
    assert model.built and model.count_params() == 320
    with pytest.raises(ArgumentError, match="takes a list of at least 2 inputs"):
        model.add(layers.Add())  # refused: needs two inputs; the model stays as it was
    model.add(layers.Flatten())
    model.add(layers.Dense(10, activation="softmax"))
    assert [layer.name.split("_")[0] for layer in model.layers] == ["conv2d", "max", "flatten", "dense"]
    assert model.get_layer(model.layers[-1].name) is model.layers[-1]
    assert model.predict(np.zeros((3, 28, 28, 1), "float32"), verbose=0).shape == (3, 10)


def test_sequential_without_input_shape_builds_on_its_first_batch_and_trains():
    ag.manual_seed(0)
    model = keras.Sequential([layers.Dense(16, activation="relu"), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0, validation_split=0.25)
    assert len(history.history["loss"]) == 8 and "val_accuracy" in history.history
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert 0 <= accuracy <= 1 and loss > 0
    assert isinstance(model.train_on_batch(x[:8], y[:8]), list)
    assert model.predict(x[:5], verbose=0).sum(axis=1) == pytest.approx(np.ones(5), rel=1e-5)


def test_fit_initial_epoch_counts_on_and_evaluate_without_metrics_gives_the_loss():
    model = keras.Sequential([keras.Input(shape=(2,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
    history = model.fit(x, y, epochs=3, initial_epoch=1, verbose=0)
    assert history.epoch == [1, 2]
    assert isinstance(model.evaluate(x, y, verbose=0), float)


def test_one_training_step_matches_keras():
    real = _real_keras()
    theirs = real.Sequential([real.Input(shape=(5,)), real.layers.Dense(4, activation="relu"),
                              real.layers.Dense(3, activation="softmax")])
    mine = keras.Sequential([keras.Input(shape=(5,)), layers.Dense(4, activation="relu"),
                             layers.Dense(3, activation="softmax")])
    mine.set_weights(theirs.get_weights())
    theirs.compile(optimizer=real.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    mine.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    mine.optimizer.param_groups[0]["lr"] = 0.1
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 5)).astype("float32"), rng.integers(0, 3, 6)
    theirs.train_on_batch(x, y)
    mine.train_on_batch(x, y)
    for a, b in zip(mine.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_a_channels_first_batch_names_the_input_and_the_fix():
    model = lecture_cnn(keras)
    with pytest.raises(ShapeError, match=r"expects batches of shape \(None, 28, 28, 1\), got \(8, 1, 28, 28\); "
                                         r"the batch looks channels-first .*x.transpose\(0, 2, 3, 1\)"):
        model.predict(np.zeros((8, 1, 28, 28), "float32"))


def test_models_that_do_not_connect_are_refused_naming_the_input():
    a, b = keras.Input(shape=(3,), name="pixels"), keras.Input(shape=(3,), name="unused")
    out = layers.Dense(2)(a)
    with pytest.raises(ArgumentError, match="'unused'.*not connected to any output"):
        keras.Model([a, b], out)
    with pytest.raises(ArgumentError, match="depends on the input 'pixels'.*not in inputs="):
        keras.Model(b, out)
    with pytest.raises(ArgumentError, match="two layers are named"):
        keras.Model(a, layers.Dense(2, name="d")(layers.Dense(2, name="d")(a)))


def test_a_keras_model_is_a_module_with_its_layer_names():
    model = lecture_cnn(keras)
    assert isinstance(model, ag.nn.Module)
    names = [name for name, _ in model.named_parameters()]
    assert names[:2] == [f"{model.layers[1].name}.kernel", f"{model.layers[1].name}.bias"]
    with ag.enable_grad():
        model.train()
        loss = model(ag.randn(2, 28, 28, 1)).sum()
    scopes = {node.scope for node in _nodes(loss)}
    assert {layer.name for layer in model.layers[1:]} <= {s.split(".")[0] for s in scopes if s}


def _nodes(t):
    seen, stack, out = set(), [t.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        out.append(node)
        stack.extend(t.grad_fn for t in node.inputs)
    return out


# --------------------------------------------------------------------------- the rest of the package on it


def test_fit_trains_on_every_backend(backend):
    ag.manual_seed(0)
    model = keras.Sequential([keras.Input(shape=(6, 6, 1)), layers.Conv2D(4, 3, activation="relu"),
                              layers.BatchNormalization(), layers.MaxPooling2D(), layers.Flatten(),
                              layers.Dense(2, activation="softmax")])
    assert model.layers[0].kernel.backend == backend
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6, 6, 1)).astype("float32")
    y = (x[:, :3].sum(axis=(1, 2, 3)) > x[:, 3:].sum(axis=(1, 2, 3))).astype("int64")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=6, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(x, verbose=0).shape == (32, 2)


def test_gradient_stats_names_the_keras_layers():
    from autograd_cnn.nn.callbacks import GradientStats

    model = keras.Sequential([layers.Dense(4, input_shape=(3,)), layers.ReLU(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(np.ones((8, 3), "float32"), np.zeros((8, 2), "float32"), batch_size=4, verbose=0,
                        callbacks=[GradientStats(every=1)])
    names = [layer.name for layer in model.layers]
    assert f"grad_norm/{names[0]}" in history.steps and f"grad_norm/{names[2]}" in history.steps
    assert f"dead_relu/{names[1]}" in history.steps


def test_gradient_stats_counts_the_dead_relus_inside_a_layer_with_activation_relu():
    from autograd_cnn.nn.callbacks import GradientStats

    model = keras.Sequential([keras.Input(shape=(2,)), layers.Dense(4, activation="relu"), layers.Dense(2)])
    model.layers[0].set_weights([np.ones((2, 4), "float32"), np.array([-100, -100, 100, 100], "float32")])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(np.ones((8, 2), "float32"), np.zeros((8, 2), "float32"), batch_size=4, verbose=0,
                        callbacks=[GradientStats(every=1)])
    assert history.steps[f"dead_relu/{model.layers[0].name}"] == [0.5, 0.5]  # two of four units never fire
    assert not any(key.startswith("dead_relu/") and model.layers[1].name in key for key in history.steps)


def test_onnx_export_runs_in_onnxruntime_as_predict(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from autograd_cnn import onnx as ag_onnx

    model = keras.Sequential([keras.Input(shape=(10, 10, 2)), layers.Conv2D(4, 3, padding="same", activation="relu"),
                              layers.BatchNormalization(), layers.AveragePooling2D(), layers.Conv2D(3, 2),
                              layers.GlobalMaxPooling2D(), layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(5, 10, 10, 2)).astype("float32")
    ag_onnx.export(model, x[:1], tmp_path / "model.onnx")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_data_parallel_fit_under_mpiexec_keeps_ranks_identical(tmp_path):
    from test_distributed import MPIEXEC, mpiexec

    if MPIEXEC is None or __import__("importlib").util.find_spec("mpi4py") is None:
        pytest.skip("needs mpi4py and mpiexec")
    script = tmp_path / "keras_fit.py"
    script.write_text(
        "import sys, numpy as np, autograd_cnn as ag\n"
        "from autograd_cnn import keras\nfrom autograd_cnn.keras import layers\n"
        "from autograd_cnn.distributed import world\n"
        "ag.manual_seed(0)\n"
        "model = keras.Sequential([keras.Input(shape=(5, 5, 1)), layers.Conv2D(3, 3, activation='relu'),\n"
        "                          layers.Flatten(), layers.Dense(2, activation='softmax')])\n"
        "model.compile(optimizer='rmsprop', loss='sparse_categorical_crossentropy', metrics=['accuracy'])\n"
        "rng = np.random.default_rng(1)\n"
        "x = rng.normal(size=(24, 5, 5, 1)).astype('float32'); y = rng.integers(0, 2, 24)\n"
        "model.fit(x, y, epochs=2, batch_size=4, verbose=0)\n"
        "np.savez(sys.argv[1] + f'/rank{world.current().rank}.npz', *model.get_weights())\n")
    code, _, err, _ = mpiexec(2, str(script), str(tmp_path), timeout=120)
    assert code == 0, err[-3000:]
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    start = np.load(tmp_path / "rank0.npz")
    assert len(start.files) == 4
    for name in ranks[0].files:
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name])


def test_the_one_trainer_gives_nn_models_validation_split_and_initial_epoch_too():
    model = ag.nn.Sequential(ag.nn.Linear(3, 2))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.arange(30, dtype="float32").reshape(10, 3) / 30
    y = np.array([0, 1] * 5)
    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0, validation_split=0.2, initial_epoch=1)
    assert history.epoch == [1, 2] and len(history.history["val_loss"]) == 2
    # the validation samples are the last two, as Keras takes them: their loss is evaluate's on them
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(x[8:], y[8:], verbose=0), rel=1e-6)
    with pytest.raises(ArgumentError, match="validation_split"):
        model.fit(x, y, validation_split=1.0, verbose=0)
    with pytest.raises(ArgumentError, match="leaves no training samples"):
        model.fit(x[:3], y[:3], validation_split=0.9, verbose=0)


def test_inputs_with_open_sizes_give_open_output_shapes():
    real = _real_keras()
    shapes = []
    for lib in (real, keras):
        i = lib.Input(shape=(None, None, 3))
        x = lib.layers.Conv2D(4, 3, strides=2, padding="same")(i)
        pooled = lib.layers.GlobalAveragePooling2D()(x)
        shapes.append((tuple(x.shape), tuple(pooled.shape)))
        model = lib.Model(i, lib.layers.Dense(2)(pooled))
    assert shapes[1] == shapes[0] == ((None, None, None, 4), (None, 4))
    assert model(ag.zeros(2, 9, 14, 3)).shape == (2, 2)


def _two_inputs() -> keras.Model:
    a, b = keras.Input(shape=(4,), name="a"), keras.Input(shape=(3,), name="b")
    h = layers.Concatenate()([layers.Dense(5, activation="relu")(a), layers.Dense(5, activation="relu")(b)])
    model = keras.Model(inputs=[a, b], outputs=layers.Dense(3, activation="softmax")(h))
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    return model


def test_a_model_of_several_inputs_takes_a_list_or_a_dict_everywhere():
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((40, 4)).astype("float32"), rng.standard_normal((40, 3)).astype("float32")
    y = rng.integers(0, 3, 40)
    model = _two_inputs()
    history = model.fit([xa, xb], y, batch_size=8, epochs=2, validation_split=0.25, verbose=0)
    assert len(history.history["val_loss"]) == 2
    as_list, as_dict = model.predict([xa, xb], verbose=0), model.predict({"b": xb, "a": xa}, verbose=0)
    np.testing.assert_array_equal(as_list, as_dict)
    assert as_list.shape == (40, 3)
    np.testing.assert_allclose(model.predict_on_batch((xa[:5], xb[:5])), as_list[:5], rtol=1e-6)
    np.testing.assert_array_equal(model(dict(a=ag.tensor(xa), b=ag.tensor(xb))).numpy(), as_list)
    loss, accuracy = model.evaluate([xa, xb], y, verbose=0)
    assert np.isclose(loss, model.test_on_batch([xa, xb], y)[0], rtol=1e-5) and 0 <= accuracy <= 1
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch([xa, xb], y)
    assert any(not np.array_equal(w, v) for w, v in zip(before, model.get_weights()))


@pytest.mark.parametrize("x, message", [
    (lambda xa, xb: [xa], "takes 2 inputs (a, b): pass x as a list of 2 arrays"),
    (lambda xa, xb: xa, "got ndarray"),
    (lambda xa, xb: {"a": xa}, "x lacks b"),
    (lambda xa, xb: {"a": xa, "b": xb, "c": xb}, "has no input named 'c'"),
    (lambda xa, xb: [xa, xb[:7]], "every input must hold the same number of samples"),
])
def test_several_inputs_given_wrong_say_what_the_model_takes(x, message):
    xa, xb = np.zeros((8, 4), "float32"), np.zeros((8, 3), "float32")
    model = _two_inputs()
    for call in (lambda: model.fit(x(xa, xb), np.zeros(8, int), verbose=0),
                 lambda: model.predict(x(xa, xb), verbose=0)):
        with pytest.raises(ag.AutogradError, match=re.escape(message)):
            call()
