"""Keras's augmentation layers: equal to real Keras where the draw is fixed, the identity outside
training, seeded, the same on every backend, and their refusals."""
from __future__ import annotations

import os

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import keras
from autograd_cnn.errors import ArgumentError, ShapeError
from autograd_cnn.keras import layers

os.environ.setdefault("KERAS_BACKEND", "torch")

MODES = ("reflect", "wrap", "nearest", "constant")


def _images(shape=(2, 5, 6, 1)):
    return np.arange(np.prod(shape), dtype="float32").reshape(shape)


def _fixed(name):
    """A layer whose draw is one value (a range of width 0), so that real Keras must agree."""
    return {
        "translation": lambda lib, **kw: lib.layers.RandomTranslation((0.4, 0.4), (-0.5, -0.5), **kw),
        "rotation": lambda lib, **kw: lib.layers.RandomRotation((0.1, 0.1), **kw),
        "zoom out": lambda lib, **kw: lib.layers.RandomZoom((0.5, 0.5), **kw),
        "zoom in": lambda lib, **kw: lib.layers.RandomZoom((-0.3, -0.3), (0.2, 0.2), **kw),
    }[name]


@pytest.mark.parametrize("name", ["translation", "rotation", "zoom out", "zoom in"])
@pytest.mark.parametrize("fill_mode", MODES)
def test_geometric_layers_equal_real_keras(name, fill_mode):
    real = pytest.importorskip("keras")
    x = _images()
    for interpolation in ("bilinear", "nearest"):
        if interpolation == "nearest" and name == "zoom in":
            continue  # pixels that fall exactly between two: a rounding of the last bit decides
        kw = {"fill_mode": fill_mode, "interpolation": interpolation, "fill_value": 7.0}
        theirs = real.ops.convert_to_numpy(_fixed(name)(real, **kw)(x, training=True))
        ours = _fixed(name)(keras, **kw)(ag.tensor(x), training=True).numpy()
        np.testing.assert_allclose(ours, theirs, atol=1e-4, err_msg=f"{name} {fill_mode} {interpolation}")


def test_outside_training_every_layer_is_the_identity():
    x = ag.tensor(_images((3, 6, 6, 2)))
    for layer in (layers.RandomFlip(), layers.RandomTranslation(0.2, 0.2), layers.RandomRotation(0.3),
                  layers.RandomZoom(0.2), layers.RandomCrop(4, 4), layers.RandomContrast(0.5)):
        assert layer(x) is x
        assert layer(x, training=True).shape != x.shape or not np.array_equal(layer(x, training=True).numpy(),
                                                                               x.numpy())


def test_fit_augments_and_predict_does_not():
    x = np.random.default_rng(0).random((16, 6, 6, 1)).astype("float32")
    y = np.arange(16) % 3
    seen = []

    class Spy(layers.Layer):
        def call(self, inputs):
            seen.append(inputs.numpy().copy())
            return inputs

    model = keras.Sequential([keras.Input((6, 6, 1)), layers.RandomRotation(0.2, seed=0), Spy(),
                              layers.Flatten(), layers.Dense(3)])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert not np.allclose(seen[-1], x)
    model.predict(x, batch_size=16)
    np.testing.assert_array_equal(seen[-1], x)


def test_a_seed_repeats_the_draws_on_every_backend(backend):
    x = np.random.default_rng(1).random((4, 7, 7, 3)).astype("float32")
    make = [lambda: layers.RandomFlip(seed=3), lambda: layers.RandomTranslation(0.3, (-0.2, 0.1), seed=3),
            lambda: layers.RandomRotation(0.2, fill_mode="constant", seed=3), lambda: layers.RandomZoom(0.3, seed=3),
            lambda: layers.RandomCrop(5, 4, seed=3), lambda: layers.RandomContrast((0.2, 0.6), (0, 1), seed=3)]
    for new in make:
        want = new()(ag.tensor(x), training=True).numpy()
        with ag.use_backend(backend):
            out = new()(ag.tensor(x), training=True)
        assert out.backend == backend
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-6)


def test_random_crop_tells_a_model_the_window_size_as_keras_does():
    model = keras.Sequential([keras.Input((10, 9, 2)), layers.RandomCrop(6, 5, seed=0), layers.Flatten(),
                              layers.Dense(3)])
    assert model.layers[-1].get_weights()[0].shape == (6 * 5 * 2, 3)  # Keras's (in, out)
    out = model(ag.tensor(np.zeros((4, 10, 9, 2), dtype="float32")), training=True)
    assert out.shape == (4, 3)


def test_channels_first_is_channels_last_transposed():
    x = np.random.default_rng(2).random((3, 6, 5, 2)).astype("float32")
    last = layers.RandomRotation(0.2, seed=4)(ag.tensor(x), training=True).numpy()
    first = layers.RandomRotation(0.2, seed=4, data_format="channels_first")(
        ag.tensor(x.transpose(0, 3, 1, 2)), training=True).numpy()
    np.testing.assert_allclose(first.transpose(0, 2, 3, 1), last, rtol=1e-6)


def test_flip_and_contrast_do_what_they_say():
    x = np.random.default_rng(3).random((30, 4, 5, 1)).astype("float32")
    out = layers.RandomFlip("horizontal", seed=0)(ag.tensor(x), training=True).numpy()
    assert all(np.array_equal(o, i) or np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x))
    out = layers.RandomContrast((0.5, 0.5), value_range=(0, 1), seed=0)(ag.tensor(x), training=True).numpy()
    mean = x.mean(axis=(1, 2), keepdims=True)
    factor = ((out - mean) / (x - mean)).reshape(30, -1)  # one factor per image where nothing clips
    inside = (out > 0) & (out < 1)
    for f, keep in zip(factor, inside.reshape(30, -1)):
        assert np.ptp(f[keep]) < 1e-4 and 0.5 - 1e-4 <= f[keep][0] <= 1.5 + 1e-4


@pytest.mark.parametrize("make, name, error", [
    (lambda: layers.RandomRotation(1.5), "factor", ArgumentError),
    (lambda: layers.RandomTranslation(0.1, (0.2, 1.2)), "width_factor", ArgumentError),
    (lambda: layers.RandomZoom(-2), "height_factor", ArgumentError),
    (lambda: layers.RandomContrast(1.5), "factor", ArgumentError),
    (lambda: layers.RandomContrast(0.2, value_range=(1, 0)), "value_range", ArgumentError),
    (lambda: layers.RandomFlip("diagonal"), "mode", ArgumentError),
    (lambda: layers.RandomRotation(0.1, fill_mode="mirror2"), "fill_mode", ArgumentError),
    (lambda: layers.RandomZoom(0.1, interpolation="bicubic"), "interpolation", ArgumentError),
    (lambda: layers.RandomCrop(0, 3), "height", ArgumentError),
    (lambda: layers.RandomCrop(9, 3)(ag.tensor(_images()), training=True), "smaller than the crop", ShapeError),
])
def test_bad_arguments_are_refused_naming_them(make, name, error):
    with pytest.raises(error, match=name):
        make()
