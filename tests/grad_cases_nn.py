"""Gradcheck rows for dropout, batch norm and the nn layers (each layer's weights are inputs)."""
from __future__ import annotations

import numpy as np
from gradcase import Case

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import nn


def _seeded_dropout(p):
    def fn(x):
        ag.manual_seed(3)  # the same mask on every call, so central differences see one function
        return F.dropout(x, p)
    return fn


def _channels_last(fn):
    """fn on its first input (N, H, W, C) viewed as (N, C, H, W): channels-last memory."""
    return lambda x, *rest: fn(x.transpose(0, 3, 1, 2), *rest)


def _running_stats(channels):
    def make(rng, b):
        mean = rng.uniform(-0.5, 0.5, size=channels)
        var = rng.uniform(0.5, 2.0, size=channels)
        return [ag.tensor(mean, dtype="float64", backend=b), ag.tensor(var, dtype="float64", backend=b)]
    return make


def _bn(training):
    return lambda x, w, b, rm, rv: F.batch_norm(x, rm, rv, w, b, training=training)


def _layer(factory, names=("weight", "bias")):
    """fn(x, *weights): the layer's forward with the given tensors in place of its parameters."""
    layers = {}

    def fn(x, *weights):
        layer = layers.get(x.backend)
        if layer is None:
            ag.manual_seed(0)
            with ag.use_backend(x.backend):
                layer = layers[x.backend] = factory().double()
        saved = [getattr(layer, n) for n in names]
        for n, w in zip(names, weights):
            object.__setattr__(layer, n, w)  # the forward reads the attribute: use the checked tensor
        try:
            return layer(x)
        finally:
            for n, w in zip(names, saved):
                object.__setattr__(layer, n, w)
    return fn


def _dropconnect(factory, p):
    """DropConnect in training around a layer, the layer's weight and bias as checked inputs, and
    one mask for every call (seeded before each), so central differences see one function."""
    layers = {}

    def fn(x, weight, bias):
        layer = layers.get(x.backend)
        if layer is None:
            ag.manual_seed(0)
            with ag.use_backend(x.backend):
                layer = layers[x.backend] = nn.DropConnect(factory().double(), p).train()
        inner = layer.module
        saved = inner.weight, inner.bias
        object.__setattr__(inner, "weight", weight)
        object.__setattr__(inner, "bias", bias)
        ag.manual_seed(3)
        try:
            return layer(x)
        finally:
            object.__setattr__(inner, "weight", saved[0])
            object.__setattr__(inner, "bias", saved[1])
    return fn


def _bn_eval_layer():
    layer = nn.BatchNorm1d(3)
    layer.load_state_dict({**layer.state_dict(), "running_mean": np.array([0.2, -0.1, 0.3]),
                           "running_var": np.array([0.5, 1.5, 2.0])})
    return layer.eval()


CASES = [
    Case("dropout", _seeded_dropout(0.4), [(4, 5)]),
    Case("dropout_4d", _seeded_dropout(0.25), [(2, 2, 3, 3)]),
    Case("batch_norm_train_2d", _bn(True), [(6, 3), (3,), (3,)], extra=_running_stats(3)),
    Case("batch_norm_train_4d", _bn(True), [(3, 2, 2, 3), (2,), (2,)], extra=_running_stats(2)),
    Case("batch_norm_eval_2d", _bn(False), [(4, 3), (3,), (3,)], extra=_running_stats(3)),
    Case("batch_norm_eval_4d", _bn(False), [(2, 2, 3, 2), (2,), (2,)], extra=_running_stats(2)),
    Case("batch_norm_train_3d_no_affine", lambda x, rm, rv: F.batch_norm(x, rm, rv), [(3, 2, 4)],
         extra=_running_stats(2)),
    Case("batch_norm_train_3d", _bn(True), [(4, 3, 5), (3,), (3,)], extra=_running_stats(3)),
    Case("batch_norm_eval_3d", _bn(False), [(2, 3, 4), (3,), (3,)], extra=_running_stats(3)),
    # channels-last memory viewed as (N, C, H, W), as a conv's output is on the numba backend
    Case("batch_norm_train_channels_last", _channels_last(_bn(True)), [(3, 2, 3, 2), (2,), (2,)],
         extra=_running_stats(2)),
    Case("batch_norm_eval_channels_last", _channels_last(_bn(False)), [(2, 3, 2, 3), (3,), (3,)],
         extra=_running_stats(3)),
    Case("batch_norm_train_after_conv2d",
         lambda x, k, w, b, rm, rv: F.batch_norm(F.conv2d(x, k), rm, rv, w, b),
         [(3, 2, 4, 4), (3, 2, 2, 2), (3,), (3,)], extra=_running_stats(3)),
    Case("dropout_channels_last", _channels_last(_seeded_dropout(0.3)), [(2, 3, 3, 4)]),
    # layers, with their weights as checked inputs (the ops' own rows cover double backward)
    Case("layer_linear", _layer(lambda: nn.Linear(4, 3)), [(5, 4), (3, 4), (3,)], double=False),
    Case("layer_conv2d", _layer(lambda: nn.Conv2d(2, 3, 3, padding=1)), [(2, 2, 4, 4), (3, 2, 3, 3), (3,)],
         double=False),
    Case("layer_conv1d", _layer(lambda: nn.Conv1d(2, 2, 3, stride=2)), [(2, 2, 7), (2, 2, 3), (2,)],
         double=False),
    Case("layer_conv_transpose2d", _layer(lambda: nn.ConvTranspose2d(2, 2, 2, stride=2)),
         [(1, 2, 2, 3), (2, 2, 2, 2), (2,)], double=False),
    Case("layer_locally_connected2d", _layer(lambda: nn.LocallyConnected2d(2, 2, 2, input_size=3)),
         [(2, 2, 3, 3), (2, 2, 2, 2, 2, 2), (2, 2, 2)], double=False),
    Case("layer_dropconnect_linear", _dropconnect(lambda: nn.Linear(4, 3), 0.4), [(5, 4), (3, 4), (3,)]),
    Case("layer_dropconnect_conv2d", _dropconnect(lambda: nn.Conv2d(2, 3, 3, padding=1), 0.3),
         [(2, 2, 4, 4), (3, 2, 3, 3), (3,)], double=False),
    Case("layer_batchnorm2d_train", _layer(lambda: nn.BatchNorm2d(2)), [(3, 2, 2, 2), (2,), (2,)], double=False),
    Case("layer_batchnorm1d_eval", _layer(_bn_eval_layer), [(4, 3), (3,), (3,)], double=False),
    Case("layer_mlp_dropout", _layer(lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Dropout(0.0),
                                                           nn.Linear(4, 2), nn.Softmax()), names=()),
         [(3, 3)], double=False),
]
