"""A softmax is never applied twice: however a model's output became a softmax, the classification
losses read the logits under it and predict adds none; unscaled pixels are told once."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import nn, optim


def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    centers = np.array([[2.0, 0.0], [-2.0, 2.0], [0.0, -2.5]])
    return (centers[y] + 0.5 * rng.standard_normal((n, 2))).astype("float32"), y


class Net(nn.Module):
    """A small MLP whose forward ends as ``ending`` says: logits, or a softmax written one way or another."""

    def __init__(self, ending: str):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
        self.ending = ending
        if ending == "layer":
            self.softmax = nn.Softmax()

    def forward(self, x):
        z = self.body(x)
        if self.ending == "layer":
            return self.softmax(z)
        if self.ending == "F.softmax":
            return F.softmax(z)
        if self.ending == "method":
            return z.softmax(axis=1)
        return z


def _trained(ending, loss="sparse_categorical_crossentropy", **compile_args):
    x, y = _blobs()
    target = np.eye(3, dtype="float32")[y] if loss == "categorical_crossentropy" else y
    ag.manual_seed(3)
    model = Net(ending)
    model.compile(optim.Adam(model.parameters(), lr=0.03), loss, ["accuracy"], **compile_args)
    history = model.fit(x, target, epochs=4, batch_size=16, verbose=0)
    return model, history, x, y


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
@pytest.mark.parametrize("ending", ["layer", "F.softmax", "method"])
def test_a_softmax_output_trains_as_its_logits_would(ending, loss):
    """The same seed, the same data: a model ending in a softmax (any way written) ends with the
    weights of the same model without it, which reads as logits. softmax(softmax(z)) would not."""
    with_softmax, history, x, y = _trained(ending, loss)
    logits, reference, _, _ = _trained("logits", loss)
    for a, b in zip(with_softmax.parameters(), logits.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history.history["loss"], reference.history["loss"], rtol=1e-5)
    probs = with_softmax.predict(x)  # one softmax: the model's own
    np.testing.assert_allclose(probs, logits.predict(x), rtol=1e-5, atol=1e-6)
    assert probs.max(axis=1).mean() > 0.8  # a softmax of probabilities would sit near 1/3
    assert history.history["accuracy"][-1] > 0.9


def test_from_logits_true_on_a_softmax_output_is_an_error_at_the_first_step():
    x, y = _blobs()
    model = Net("method")
    model.compile("adam", "sparse_categorical_crossentropy", from_logits=True)
    before = [p.numpy().copy() for p in model.parameters()]
    with pytest.raises(ag.ArgumentError, match=r"compile\(from_logits=True\): the model's output is a softmax "
                                               r"over the classes, axis 1"):
        model.fit(x, y, epochs=1, verbose=0)
    assert all(np.array_equal(a, p.numpy()) for a, p in zip(before, model.parameters()))  # no step taken


def test_from_logits_false_reads_probabilities_from_any_output():
    """Told that the output holds probabilities, the loss is Keras's clipped log of them."""
    x, y = _blobs(30)

    class Normalised(nn.Module):  # probabilities, not from a softmax
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 3)

        def forward(self, x):
            e = self.fc(x).sigmoid()
            return e / e.sum(axis=1, keepdims=True)

    model = Normalised()
    model.compile("sgd", "sparse_categorical_crossentropy", from_logits=False)
    p = model(ag.tensor(x)).numpy()
    expected = -np.log(np.clip(p[np.arange(30), y], 1e-7, 1 - 1e-7)).mean()
    assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(model.predict(x), p, rtol=1e-6)  # no softmax added


def test_a_softmax_over_another_axis_is_not_read_as_class_probabilities():
    class OverSamples(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 3)

        def forward(self, x):
            return self.fc(x).softmax(axis=0)

    x, y = _blobs(30)
    model = OverSamples()
    model.compile("sgd", "sparse_categorical_crossentropy")
    out = model(ag.tensor(x))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(F.cross_entropy(out, ag.tensor(y)).item(), rel=1e-5)


def test_evaluate_and_predict_before_fit_know_a_softmax_output():
    """Nothing has been trained: the first batch of evaluate (or predict) is recorded to read the graph."""
    x, y = _blobs(40)
    model = Net("method")
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.eval()  # evaluate's mode: Dropout off
    z = model.body(ag.tensor(x))
    model.train()
    assert model.evaluate(x, y, batch_size=16, verbose=0) == pytest.approx(
        F.cross_entropy(z, ag.tensor(y)).item(), rel=1e-5)
    fresh = Net("F.softmax")
    fresh.compile("sgd", "sparse_categorical_crossentropy")
    probs = fresh.predict(x, batch_size=16)
    fresh.eval()
    np.testing.assert_allclose(probs, fresh(ag.tensor(x)).numpy(), rtol=1e-6)  # the model's one softmax


# --------------------------------------------------------------------------- unscaled pixels


def test_raw_pixels_are_told_once():
    x, y = _blobs(64)
    pixels = np.clip(x * 40 + 128, 0, 255).astype("uint8")
    model = nn.Sequential(nn.Linear(2, 3))
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match=r"fit: x holds integers from 0 to 255 \(uint8, raw pixels\?\) and the "
                                         r"model computes in float32; scale them to \[0, 1\] first \(x = x / 255\)"):
        model.fit(pixels, y, epochs=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.evaluate(pixels, y, verbose=0)  # told once for this model
        model.predict(pixels)
        scaled = nn.Sequential(nn.Linear(2, 3))
        scaled.compile("sgd", "sparse_categorical_crossentropy")
        scaled.fit(pixels / 255, y, epochs=1, verbose=0)  # floats in [0, 1]
        scaled.fit((pixels > 128).astype("uint8"), y, epochs=1, verbose=0)  # 0 and 1: not pixels
        scaled.fit(x.astype("int64") * 1000, y, epochs=1, verbose=0)  # beyond 255: not pixels
    other = nn.Sequential(nn.Linear(2, 3))
    with pytest.warns(UserWarning, match="predict: x holds integers from 0 to 255"):
        other.predict(pixels)


def test_a_frozen_model_with_no_graph_to_read_goes_by_its_last_layer():
    """Every parameter frozen and the input plain: no graph is recorded, so the final nn.Softmax says."""
    x, y = _blobs(30)
    model = nn.Sequential(nn.Linear(2, 3), nn.Softmax()).requires_grad_(False)
    model.compile("sgd", "sparse_categorical_crossentropy")
    logits = model[0](ag.tensor(x))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(F.cross_entropy(logits, ag.tensor(y)).item(), rel=1e-5)
    np.testing.assert_allclose(model.predict(x), logits.softmax(axis=1).numpy(), rtol=1e-5)  # no second softmax
    model.compile("sgd", "sparse_categorical_crossentropy", from_logits=True)  # the user's word, unchecked
    np.testing.assert_allclose(model.predict(x), model(ag.tensor(x)).softmax(axis=1).numpy(), rtol=1e-5)
