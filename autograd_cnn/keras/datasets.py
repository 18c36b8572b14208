"""Keras's data sets (`mnist`, `fashion_mnist`, `cifar10`) in Keras's shapes, through `autograd_cnn.data`.

    from autograd_cnn.keras.datasets import mnist
    (train_images, train_labels), (test_images, test_labels) = mnist.load_data()

The files are found, checked (SHA-256) and downloaded as ``autograd_cnn.data`` does it:
``$AUTOGRAD_CNN_DATA``, the cache folder, Debian's package folder, then the public mirrors.
Without them (offline), a ``DataError`` lists where it looked and how to get the files.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import data
from ..data import DataError

_Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class _KerasDataSet:
    """One of Keras's ``keras.datasets`` modules: ``load_data()`` gives ((x_train, y_train), (x_test, y_test))."""

    def __init__(self, name: str, loader: Callable[[], _Split], shapes: str) -> None:
        self.name, self._loader = name, loader
        self.__doc__ = f"keras.datasets.{name}: load_data() gives {shapes}."

    def load_data(self) -> _Split:
        """((x_train, y_train), (x_test, y_test)) as NumPy arrays, in Keras's shapes and dtypes."""
        try:
            return self._loader()
        except DataError as e:
            raise DataError(f"keras.datasets.{self.name}.load_data(): {e}\nFor a quick start without any "
                            "download, autograd_cnn.data.load_sample() gives the 5,000 MNIST digits that ship "
                            "with the package.") from e

    def __repr__(self) -> str:
        return f"<keras.datasets.{self.name}>"


def _cifar10() -> _Split:
    """CIFAR-10 as Keras gives it: labels shaped (N, 1)."""
    (x_train, y_train), (x_test, y_test) = data.load_cifar10()
    return (x_train, y_train.reshape(-1, 1)), (x_test, y_test.reshape(-1, 1))


# The loaders are looked up when called, so data's own loaders are the one place that loads.
mnist = _KerasDataSet("mnist", lambda: data.load_mnist(),
                      "uint8 images (60000, 28, 28) and (10000, 28, 28), uint8 labels (60000,) and (10000,)")
fashion_mnist = _KerasDataSet("fashion_mnist", lambda: data.load_fashion_mnist(),
                              "uint8 images (60000, 28, 28) and (10000, 28, 28), uint8 labels 0-9")
cifar10 = _KerasDataSet("cifar10", _cifar10,
                        "uint8 images (50000, 32, 32, 3) and (10000, 32, 32, 3), uint8 labels (50000, 1), "
                        "(10000, 1)")

__all__ = ["cifar10", "fashion_mnist", "mnist"]
