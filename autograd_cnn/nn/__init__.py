"""Layers and models: ``from autograd_cnn import nn``.

PyTorch's vocabulary (Module, Parameter, Linear, Conv2d, ...) with Keras's workflow on
every Module (summary, compile, fit, evaluate, predict). Callbacks live here too.
"""
from __future__ import annotations

from . import init
from .callbacks import BackupAndRestore, Callback, EarlyStopping, GradientStats, History, ModelCheckpoint
from .dropconnect import DropConnect
from .layers import (
    GELU,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    GlobalMaxPool2d,
    Identity,
    LeakyReLU,
    Linear,
    LocallyConnected2d,
    MaxPool1d,
    MaxPool2d,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from .module import Module, Parameter

__all__ = [
    "GELU", "AdaptiveAvgPool2d", "AvgPool1d", "AvgPool2d", "BackupAndRestore", "BatchNorm1d", "BatchNorm2d", "Callback",
    "Conv1d", "Conv2d", "ConvTranspose2d", "DropConnect", "Dropout", "EarlyStopping", "Flatten", "GlobalAvgPool2d",
    "GradientStats",
    "GlobalMaxPool2d", "History", "Identity", "LeakyReLU", "Linear", "LocallyConnected2d", "MaxPool1d",
    "MaxPool2d", "ModelCheckpoint", "Module", "Parameter", "ReLU", "Sequential", "Sigmoid", "Softmax",
    "Tanh", "init",
]
