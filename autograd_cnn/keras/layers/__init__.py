"""Keras's layers: channels-last by default, sizes inferred from the first input, Keras's names."""
from __future__ import annotations

from .base import Layer
from .convolutional import Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D, ZeroPadding2D
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, LeakyReLU, ReLU, Reshape, Softmax
from .merging import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, concatenate
from .normalization import BatchNormalization
from .pooling import AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPool2D, MaxPooling2D

__all__ = ["Activation", "Add", "Average", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "Concatenate",
           "Conv1D", "Conv2D", "Conv2DTranspose", "Dense", "DepthwiseConv2D", "Dropout", "Flatten",
           "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Input", "InputLayer", "Layer", "LeakyReLU", "MaxPool2D",
           "MaxPooling2D", "Maximum", "Minimum", "Multiply", "ReLU", "Reshape", "SeparableConv2D", "Softmax",
           "Subtract", "ZeroPadding2D", "add", "concatenate"]
