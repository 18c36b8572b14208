"""Keras's layers: channels-last by default, sizes inferred from the first input, Keras's names."""
from __future__ import annotations

from .augmentation import RandomContrast, RandomCrop, RandomFlip, RandomRotation, RandomTranslation, RandomZoom
from .base import Layer
from .convolutional import Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D, ZeroPadding2D
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, LeakyReLU, ReLU, Reshape, Softmax

__all__ = ["Activation", "Conv1D", "Conv2D", "Conv2DTranspose", "Dense", "DepthwiseConv2D", "Dropout", "Flatten",
           "Input", "InputLayer", "Layer", "LeakyReLU", "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation",
           "RandomTranslation", "RandomZoom", "ReLU", "Reshape", "SeparableConv2D", "Softmax",
           "ZeroPadding2D"]
