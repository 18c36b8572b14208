"""Keras's layers: channels-last by default, sizes inferred from the first input, Keras's names."""
from __future__ import annotations

from .base import Layer
from .convolutional import Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D, ZeroPadding2D
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, LeakyReLU, ReLU, Reshape, Softmax

__all__ = ["Activation", "Conv1D", "Conv2D", "Conv2DTranspose", "Dense", "DepthwiseConv2D", "Dropout", "Flatten",
           "Input", "InputLayer", "Layer", "LeakyReLU", "ReLU", "Reshape", "SeparableConv2D", "Softmax",
           "ZeroPadding2D"]
