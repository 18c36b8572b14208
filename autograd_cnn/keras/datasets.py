"""Keras's data sets (`mnist`, `fashion_mnist`, `cifar10`) in Keras's shapes, through `autograd_cnn.data`."""
from __future__ import annotations

__all__: list[str] = []
