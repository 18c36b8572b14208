"""nn.DropConnect: the weights it drops and scales in training, the weights as they are in
evaluation, seeded masks, the forward picture's mask, and its refusals."""
from __future__ import annotations

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import nn
from autograd_cnn.errors import ArgumentError, ArgumentTypeError


def _effective_weight(layer: nn.DropConnect) -> np.ndarray:
    """The weight a Linear's training forward used: its output for the identity, less the bias."""
    eye = ag.tensor(np.eye(layer.module.in_features, dtype="float32"))
    return (layer(eye) - layer.module.bias).numpy().T


def test_training_drops_each_weight_with_probability_p_and_scales_the_rest(backend):
    with ag.use_backend(backend):
        ag.manual_seed(0)
        layer = nn.DropConnect(nn.Linear(200, 100), p=0.3).train()
        used = _effective_weight(layer)
    weight = layer.module.weight.numpy()
    dropped = used == 0
    assert 0.27 < dropped.mean() < 0.33
    np.testing.assert_allclose(used[~dropped], weight[~dropped] / 0.7, rtol=1e-5, atol=1e-7)  # less the bias: float32


def test_evaluation_uses_the_weights_as_they_are():
    ag.manual_seed(1)
    layer = nn.DropConnect(nn.Conv2d(2, 4, 3, padding=1), p=0.5)
    x = ag.tensor(np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype("float32"))
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer.module(x).numpy())
    layer.train()
    assert not np.allclose(layer(x).numpy(), layer.module(x).numpy())


def test_a_conv_in_training_is_the_conv_of_the_masked_weight_and_its_gradient_is_masked():
    layer = nn.DropConnect(nn.Conv2d(2, 3, 3), p=0.4).train()
    x = ag.tensor(np.random.default_rng(2).standard_normal((2, 2, 6, 6)).astype("float32"))
    ag.manual_seed(7)
    mask = layer.mask(layer.module.weight)
    ag.manual_seed(7)
    out = layer(x)
    want = F.conv2d(x, layer.module.weight * mask, layer.module.bias)
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-6)
    out.sum().backward()
    grad = layer.module.weight.grad.numpy()
    assert np.all(grad[mask.numpy() == 0] == 0) and np.all(grad[mask.numpy() != 0] != 0)


def test_a_seed_repeats_the_masks_and_fit_trains_through_them():
    x = np.random.default_rng(3).standard_normal((64, 6)).astype("float32")
    y = (x[:, 0] > 0).astype(np.int64)
    results = []
    for _ in range(2):
        ag.manual_seed(4)
        model = nn.Sequential(nn.DropConnect(nn.Linear(6, 16), 0.3), nn.ReLU(), nn.Linear(16, 2))
        model.compile("adam", metrics=["accuracy"])
        history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        results.append((history.history["loss"], model.state_dict()["0.module.weight"].numpy()))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert results[0][0][-1] < results[0][0][0]


def test_the_forward_picture_shows_the_mask():
    visual = pytest.importorskip("autograd_cnn.visual")
    layer = nn.DropConnect(nn.Linear(3, 2), p=0.5).train()
    out = layer(ag.tensor(np.ones((1, 3), dtype="float32"))).sum()
    source = visual.forward_graph(out).source
    assert "dropconnect mask" in source


@pytest.mark.parametrize("make, name, error", [
    (lambda: nn.DropConnect(nn.Linear(2, 2), p=1.0), "p", ArgumentError),
    (lambda: nn.DropConnect(nn.Linear(2, 2), p=-0.1), "p", ArgumentError),
    (lambda: nn.DropConnect(nn.Linear(2, 2), p="0.5"), "p", ArgumentTypeError),
    (lambda: nn.DropConnect(nn.ReLU(), p=0.5), "module", ArgumentTypeError),
    (lambda: nn.DropConnect(nn.Sequential(nn.Linear(2, 2)), p=0.5), "module", ArgumentTypeError),
])
def test_bad_arguments_are_refused_naming_them(make, name, error):
    with pytest.raises(error, match=name):
        make()
