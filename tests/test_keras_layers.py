"""keras.layers against real Keras (where installed): each layer's outputs after set_weights from a
Keras layer, parameter counts, weight shapes; and the Layer interface itself (names, build, config)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import keras as ours
from autograd_cnn.errors import ArgumentError, AutogradError, ShapeError

# (class name, constructor arguments, one sample's shape): every layer type, Keras's defaults and others.
CASES = [
    ("Dense", {"units": 7}, (5,)),
    ("Dense", {"units": 3, "activation": "relu", "use_bias": False}, (4, 6)),
    ("Dense", {"units": 4, "activation": "softmax"}, (6,)),
    ("Conv1D", {"filters": 4, "kernel_size": 3}, (9, 2)),
    ("Conv1D", {"filters": 4, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, (9, 2)),
    ("Conv2D", {"filters": 5, "kernel_size": 3, "activation": "relu"}, (8, 8, 3)),
    ("Conv2D", {"filters": 4, "kernel_size": (3, 2), "strides": 2, "padding": "same"}, (9, 8, 2)),
    ("Conv2D", {"filters": 4, "kernel_size": 2, "padding": "same"}, (6, 6, 2)),
    ("Conv2D", {"filters": 4, "kernel_size": 3, "dilation_rate": 2, "groups": 2}, (9, 9, 4)),
    ("Conv2D", {"filters": 4, "kernel_size": 3, "data_format": "channels_first"}, (2, 7, 7)),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2}, (5, 5, 2)),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}, (5, 5, 2)),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": 2, "strides": 2}, (4, 4, 2)),
    ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2}, (7, 7, 3)),
    ("DepthwiseConv2D", {"kernel_size": 3, "padding": "same", "strides": 2}, (8, 8, 2)),
    ("SeparableConv2D", {"filters": 4, "kernel_size": 3, "depth_multiplier": 2}, (7, 7, 3)),
    ("MaxPooling2D", {"pool_size": 2}, (7, 7, 3)),
    ("MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (8, 8, 2)),
    ("AveragePooling2D", {"pool_size": 2}, (6, 6, 2)),
    ("AveragePooling2D", {"pool_size": 2, "padding": "same"}, (5, 5, 2)),
    ("GlobalAveragePooling2D", {}, (5, 4, 3)),
    ("GlobalMaxPooling2D", {"keepdims": True}, (5, 4, 3)),
    ("Flatten", {}, (3, 4, 2)),
    ("Flatten", {"data_format": "channels_first"}, (3, 4, 2)),
    ("Reshape", {"target_shape": (4, -1)}, (3, 4, 2)),
    ("Activation", {"activation": "tanh"}, (6,)),
    ("Activation", {"activation": "gelu"}, (6,)),
    ("ReLU", {"max_value": 0.5, "negative_slope": 0.1}, (6,)),
    ("LeakyReLU", {}, (6,)),
    ("Softmax", {"axis": 1}, (3, 4)),
    ("ZeroPadding2D", {"padding": ((1, 2), (0, 1))}, (4, 4, 2)),
    ("BatchNormalization", {}, (4, 4, 3)),
    ("BatchNormalization", {"axis": 1, "center": False}, (3, 5)),
]


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _pair(name: str, kwargs: dict, shape: tuple):
    """The same layer in Keras and here, both built for ``shape``, ours given Keras's weights (randomised
    first where Keras starts them at constants, so that every weight counts)."""
    keras = _keras()
    rng = np.random.default_rng(0)
    theirs = getattr(keras.layers, name)(**kwargs)
    theirs.build((None,) + shape)
    weights = [w + rng.normal(0, 0.3, w.shape).astype("float32") if w.ndim == 1 else w
               for w in theirs.get_weights()]
    if name == "BatchNormalization":
        weights[-1] = np.abs(weights[-1]) + 0.5  # a variance
    theirs.set_weights(weights)
    mine = getattr(ours.layers, name)(**kwargs)
    mine.build((None,) + shape)
    mine.set_weights(weights)
    return theirs, mine


@pytest.mark.parametrize("name, kwargs, shape", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_layer_matches_keras(name, kwargs, shape):
    theirs, mine = _pair(name, kwargs, shape)
    x = np.random.default_rng(1).normal(size=(3,) + shape).astype("float32")
    want = np.asarray(theirs(x, training=False).detach().cpu().numpy())
    got = mine(ag.tensor(x), training=False).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert mine.count_params() == theirs.count_params()
    assert [w.shape for w in mine.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    for a, b in zip(mine.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)  # back out in Keras's layout unchanged


@pytest.mark.parametrize("kwargs, shape", [({}, (4, 4, 3)), ({"axis": 1}, (6, 5)), ({"momentum": 0.9}, (3, 3, 2))])
def test_batch_normalization_training_step_matches_keras(kwargs, shape):
    theirs, mine = _pair("BatchNormalization", kwargs, shape)
    x = np.random.default_rng(2).normal(1.0, 2.0, size=(4,) + shape).astype("float32")
    want = theirs(x, training=True).detach().cpu().numpy()
    got = mine(ag.tensor(x), training=True).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    for a, b in zip(mine.get_weights(), theirs.get_weights()):  # the moving statistics moved alike
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_names_are_keras_names_and_unique_per_kind():
    a, b = ours.layers.Conv2D(2, 3), ours.layers.Conv2D(2, 3)
    assert a.name.startswith("conv2d") and b.name != a.name and b.name.startswith("conv2d_")
    assert ours.layers.MaxPool2D().name.startswith("max_pooling2d")
    assert ours.layers.ReLU().name.startswith("re_lu")
    assert ours.layers.Dense(3, name="head").name == "head"


def test_layer_interface_build_weights_and_config():
    layer = ours.layers.Dense(4, activation="relu")
    assert not layer.built and layer.weights == []
    with pytest.raises(ArgumentError, match="not built"):
        layer.count_params()
    y = layer(ag.randn(2, 3))
    assert layer.built and y.shape == (2, 4) and layer.count_params() == 16
    assert [tuple(w.shape) for w in layer.get_weights()] == [(3, 4), (4,)]
    assert layer.kernel.shape == (4, 3)  # kept in the engine's layout: the same op as nn.Linear runs
    config = layer.get_config()
    assert config["units"] == 4 and config["activation"] == "relu"
    twin = ours.layers.Dense.from_config({**config, "name": "twin"})
    assert twin.units == 4 and twin.name == "twin"
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
    assert not layer.kernel.requires_grad


def test_glorot_uniform_kernels_and_zero_biases():
    ag.manual_seed(0)
    layer = ours.layers.Conv2D(64, 3)
    layer.build((None, 8, 8, 32))
    kernel, bias = layer.get_weights()
    limit = np.sqrt(6 / (3 * 3 * 32 + 3 * 3 * 64))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
    assert abs(kernel.std() - limit / np.sqrt(3)) < 0.05 * limit
    assert not bias.any()


def test_set_weights_checks_every_shape_before_copying():
    layer = ours.layers.Dense(2)
    layer.build((None, 3))
    before = layer.get_weights()
    with pytest.raises(ShapeError, match=r"kernel must have Keras's shape \(3, 2\)"):
        layer.set_weights([np.ones((2, 3), "float32"), np.ones(2, "float32")])
    with pytest.raises(ArgumentError, match="expected 2 arrays"):
        layer.set_weights([np.ones((3, 2), "float32")])
    for a, b in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make, match", [
    (lambda: ours.layers.Dense(0), "units must be an int >= 1"),
    (lambda: ours.layers.Dense(3, activation="rellu"), "unknown activation 'rellu'; known: gelu"),
    (lambda: ours.layers.Conv2D(4, 3, padding="full"), "padding must be one of"),
    (lambda: ours.layers.Conv2D(4, 3, kernel_initializer="glorot"), "unknown initializer 'glorot'"),
    (lambda: ours.layers.Dense(3, unitz=4), "unexpected argument 'unitz'"),
    (lambda: ours.layers.Dropout(1.0), "rate must be a finite number in"),
])
def test_bad_arguments_are_refused_where_given(make, match):
    with pytest.raises(ArgumentError, match=match):
        make()


def test_a_channels_first_batch_to_a_channels_last_layer_says_what_to_do():
    layer = ours.layers.Conv2D(4, 3)
    layer(ag.zeros(2, 28, 28, 1))
    with pytest.raises(ShapeError, match=r"expects input of shape \(None, H, W, 1\), got \(8, 1, 28, 28\); "
                                         r"the batch looks channels-first .*data_format='channels_first'"):
        layer(ag.zeros(8, 1, 28, 28))


def test_a_failed_first_call_leaves_the_layer_unbuilt():
    layer = ours.layers.Dense(3)
    with pytest.raises(AutogradError):
        layer(ours.Input(shape=(None,)))
    assert not layer.built and layer.weights == [] and not list(layer.parameters())
    assert layer(ag.zeros(2, 5)).shape == (2, 3)


def test_merging_layers_refuse_shapes_that_do_not_fit():
    a, b = ours.Input(shape=(4,)), ours.Input(shape=(5,))
    with pytest.raises(ShapeError, match=r"cannot combine inputs of shapes \(None, 4\) and \(None, 5\)"):
        ours.layers.Add()([a, b])
    with pytest.raises(ShapeError, match="cannot join"):
        ours.layers.Concatenate(axis=-1)([ours.Input(shape=(2, 3)), ours.Input(shape=(3, 3))])
    assert ours.layers.concatenate([a, b]).shape == (None, 9)


def test_merge_layers_compute_as_keras():
    x, y = ag.tensor(np.arange(6.0).reshape(2, 3)), ag.tensor(np.ones((2, 3)))
    np.testing.assert_allclose(ours.layers.Add()([x, y]).numpy(), x.numpy() + 1)
    np.testing.assert_allclose(ours.layers.Subtract()([x, y]).numpy(), x.numpy() - 1)
    np.testing.assert_allclose(ours.layers.Average()([x, y]).numpy(), (x.numpy() + 1) / 2)
    np.testing.assert_allclose(ours.layers.Maximum()([x, y]).numpy(), np.maximum(x.numpy(), 1))
    np.testing.assert_allclose(ours.layers.Concatenate()([x, y]).numpy(), np.concatenate([x.numpy(), y.numpy()], 1))


def test_dropout_drops_in_training_only():
    layer = ours.layers.Dropout(0.5)
    x = ag.ones(200, 10)
    assert (layer(x).numpy() == 1).all()  # a call is inference unless training is asked for
    y = layer(x, training=True).numpy()
    assert set(np.unique(y)) == {0.0, 2.0}


def test_average_pooling_same_counts_only_the_values_inside_the_image():
    # Keras's documented "same" (TensorFlow's): a window's mean over its real values. (Keras's own
    # PyTorch backend pads by repeating the edge instead, which differs where a window holds two pads.)
    x = np.arange(2 * 8 * 8, dtype="float32").reshape(1, 8, 8, 2)
    got = ours.layers.AveragePooling2D(3, strides=2, padding="same")(ag.tensor(x)).numpy()
    want = np.zeros((1, 4, 4, 2), "float32")
    for i in range(4):
        for j in range(4):  # total padding 1 per axis, all of it after the image
            want[0, i, j] = x[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3].mean(axis=(0, 1))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_backend_image_data_format_is_the_layers_default():
    from autograd_cnn.keras import backend

    assert backend.image_data_format() == "channels_last" and backend.epsilon() == 1e-7
    backend.set_image_data_format("channels_first")
    try:
        layer = ours.layers.Conv2D(4, 3)
        assert layer.data_format == "channels_first"
        assert layer(ag.zeros(2, 1, 8, 8)).shape == (2, 4, 6, 6)
    finally:
        backend.set_image_data_format("channels_last")
    assert ours.layers.MaxPooling2D().data_format == "channels_last"
