"""The slides' Keras models, written as on the slides, built with either Keras: ours
(``autograd_cnn.keras``) or the real one (``tests/test_keras_*.py``)."""
from __future__ import annotations

from typing import Any


def lecture_cnn(lib: Any, pool: bool = True) -> Any:
    """The slides' convnet: 104,202 parameters, 712,202 without the pools."""
    inputs = lib.Input(shape=(28, 28, 1))
    x = lib.layers.Conv2D(filters=32, kernel_size=3, activation="relu")(inputs)
    x = lib.layers.MaxPool2D(pool_size=2)(x) if pool else x
    x = lib.layers.Conv2D(filters=64, kernel_size=3, activation="relu")(x)
    x = lib.layers.MaxPool2D(pool_size=2)(x) if pool else x
    x = lib.layers.Conv2D(filters=128, kernel_size=3, activation="relu")(x)
    x = lib.layers.Flatten()(x)
    outputs = lib.layers.Dense(10, activation="softmax")(x)
    return lib.Model(inputs=inputs, outputs=outputs)
