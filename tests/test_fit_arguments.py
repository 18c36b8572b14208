"""compile, fit, evaluate, predict and DataLoader check their arguments where they are given.

Each refusal is one of our errors (an ``ag.AutogradError`` that is also the matching built-in)
naming the call, the argument, the value and what is allowed; nothing is coerced silently.
"""
from __future__ import annotations

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import data, nn


def _blobs(n=24):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = (np.array([[2.0, 0.0], [-2.0, 2.0], [0.0, -2.5]])[y] + 0.3 * rng.standard_normal((n, 2))).astype("float32")
    return x, y


def _model(compiled=True):
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    if compiled:
        model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    return model


def _refused(kind, pattern, call, *args, **kwargs):
    """``call`` raises ``kind`` (also an AutogradError) with a message matching ``pattern``."""
    with pytest.raises(kind, match=pattern) as err:
        call(*args, **kwargs)
    assert isinstance(err.value, ag.AutogradError), type(err.value)
    return err.value


def _weights(model):
    return [p.numpy().copy() for p in model.parameters()]


# --------------------------------------------------------------------------- what was seen


def test_text_inputs_are_refused_by_fit_not_inside_linear():
    x, y = _blobs()
    model = _model()
    _refused(TypeError, r"fit: x must hold numbers, got an array of strings \(<U3\)",
             model.fit, x.astype(str).astype("<U3"), y, verbose=0)


def test_class_names_as_labels_are_refused_with_what_to_do():
    x, y = _blobs(1)
    _refused(TypeError, r"fit: y must hold class indices \(integers\).*'cat'.*np\.unique",
             _model().fit, x, ["cat"], verbose=0)


def test_float_labels_with_fractions_are_refused_not_truncated():
    x, _ = _blobs(3)
    model = _model()
    before = _weights(model)
    _refused(ValueError, r"fit: y must hold class indices \(integers\).*0\.7 at y\[0\]",
             model.fit, x, np.array([0.7, 1.7, 2.7]), verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model)))


def test_labels_given_as_text_are_refused_not_converted():
    x, _ = _blobs(3)
    _refused(TypeError, r"fit: y must hold class indices \(integers\), got strings such as '1'",
             _model().fit, x, np.array(["1", "0", "2"]), verbose=0)


def test_whole_float_labels_are_class_indices():
    x, y = _blobs()
    first, second = _model(), _model()
    a = first.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0).history
    b = second.fit(x, y.astype("float32"), epochs=2, batch_size=8, shuffle=False, verbose=0).history
    assert a == b


@pytest.mark.parametrize("epochs", [-1, 0])
def test_epochs_below_one_are_refused(epochs):
    x, y = _blobs()
    _refused(ValueError, rf"fit: epochs must be an int >= 1, got {epochs}", _model().fit, x, y, epochs=epochs)


@pytest.mark.parametrize("call", ["fit", "evaluate", "predict"])
def test_a_fractional_batch_size_is_refused(call):
    x, y = _blobs()
    model = _model()
    args = (x,) if call == "predict" else (x, y)
    _refused(TypeError, rf"{call}: batch_size must be an int >= 1, got 2.5", getattr(model, call), *args,
             batch_size=2.5)
    _refused(ValueError, rf"{call}: batch_size must be an int >= 1, got 0", getattr(model, call), *args,
             batch_size=0)


def test_cross_entropy_with_float_labels_says_integers_were_probably_meant():
    logits = ag.randn(4, 3)
    with pytest.raises(ag.ShapeError, match=r"integer class indices.*int64") as err:
        F.cross_entropy(logits, ag.tensor(np.array([0.0, 1.0, 2.0, 1.0])))
    assert "probabilit" in str(err.value)  # it still says what float targets must be


# --------------------------------------------------------------------------- every other argument


@pytest.mark.parametrize("kwargs, kind, pattern", [
    ({"shuffle": "yes"}, TypeError, r"fit: shuffle must be True or False, got 'yes'"),
    ({"verbose": 3}, ValueError, r"fit: verbose must be 0, 1 or 2 \(or True, False\), got 3"),
    ({"verbose": "loud"}, TypeError, r"fit: verbose must be 0, 1 or 2"),
    ({"epochs": 2.0}, TypeError, r"fit: epochs must be an int >= 1, got 2.0"),
    ({"epochs": True}, TypeError, r"fit: epochs must be an int >= 1, got True"),
    ({"batch_size": "8"}, TypeError, r"fit: batch_size must be an int >= 1, got '8'"),
    ({"callbacks": [print]}, TypeError, r"fit: callbacks\[0\] must be an nn.Callback"),
    ({"callbacks": nn.EarlyStopping()}, TypeError, r"fit: callbacks must be a list of nn.Callback"),
    ({"validation_data": ([1.0],)}, TypeError, r"fit: validation_data must be a pair \(x, y\)"),
    ({"validation_data": "xy"}, TypeError, r"fit: validation_data must be a pair \(x, y\)"),
])
def test_fit_checks_each_argument(kwargs, kind, pattern):
    x, y = _blobs()
    model = _model()
    before = _weights(model)
    _refused(kind, pattern, model.fit, x, y, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model)))  # refused before any step


def test_validation_data_is_checked_before_training():
    x, y = _blobs()
    model = _model()
    before = _weights(model)
    _refused(TypeError, r"fit \(validation_data\): y must hold class indices", model.fit, x, y,
             validation_data=(x, y.astype(str)), verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model)))


@pytest.mark.parametrize("x, kind, pattern", [
    (np.float32(1.0), ValueError, r"fit: x must have a first axis of samples, got a single number"),
    (np.zeros(24, dtype="float32"), ValueError, r"fit: x must have a first axis of samples and at least one more, "
                                                r"got shape \(24\); for one number per sample use x.reshape\(-1, 1\)"),
    ([[1.0, 2.0], [3.0]], ValueError, r"fit: x must be an array of numbers.*inhomogeneous|fit: x must be an array"),
    (np.array([[1 + 2j, 0]] * 24), TypeError, r"fit: x must hold numbers, got an array of complex"),
    (np.array([[None, 1.0]] * 24), TypeError, r"fit: x must hold numbers, got an array of objects"),
])
def test_fit_refuses_x_that_is_no_array_of_numbers(x, kind, pattern):
    _, y = _blobs()
    _refused(kind, pattern, _model().fit, x, y, verbose=0)


def test_labels_must_be_non_negative_and_not_booleans():
    x, y = _blobs()
    _refused(ValueError, r"fit: y must hold class indices >= 0, got -1 at y\[0\]", _model().fit, x, y - 1)
    _refused(TypeError, r"fit: y must hold class indices \(integers\), got booleans", _model().fit, x, y > 0)
    _refused(ValueError, r"fit: y holds NaN or Inf \(the first at y\[2\]\)", _model().fit, x,
             np.where(np.arange(24) == 2, np.nan, y))


def test_regression_targets_must_be_numbers():
    x, _ = _blobs()
    model = nn.Sequential(nn.Linear(2, 1))
    model.compile("sgd", "mse")
    _refused(TypeError, r"fit: y must hold numbers, got an array of strings", model.fit, x, np.array(["1.5"] * 24))
    model.fit(x, np.ones((24, 1), dtype="float64"), epochs=1, verbose=0)  # numbers of any dtype work


def test_evaluate_and_predict_check_their_arguments():
    x, y = _blobs()
    model = _model()
    _refused(TypeError, r"evaluate: verbose must be 0, 1 or 2", model.evaluate, x, y, verbose="yes")
    _refused(TypeError, r"evaluate: y must hold class indices", model.evaluate, x, y.astype(str))
    _refused(ValueError, r"evaluate: y must hold class indices \(integers\).*0\.5", model.evaluate, x, y + 0.5)
    _refused(TypeError, r"predict: x must hold numbers", model.predict, x.astype(str))
    _refused(ValueError, r"predict: verbose must be 0, 1 or 2 \(or True, False\), got -1", model.predict, x,
             verbose=-1)
    assert model.predict(x, batch_size=np.int64(5)).shape == (24, 3)  # NumPy's ints are ints


@pytest.mark.parametrize("kwargs, kind, pattern", [
    ({"optimizer": 3}, TypeError, r"compile: optimizer must be a name .* or an optimizer object"),
    ({"optimizer": "lbfgs"}, ValueError, r"compile: unknown optimizer 'lbfgs'"),
    ({"loss": 5}, TypeError, r"compile: loss must be one of .* or a callable loss\(output, target\), got 5"),
    ({"loss": "hinge"}, ValueError, r"compile: unknown loss 'hinge'"),
    ({"metrics": "accuracy"}, TypeError, r"compile: metrics must be a list such as \[.*\], got 'accuracy'"),
    ({"metrics": ["auc"]}, ValueError, r"compile: unknown metric 'auc'"),
    ({"from_logits": 1}, TypeError, r"compile: from_logits must be True, False or None, got 1"),
])
def test_compile_checks_each_argument(kwargs, kind, pattern):
    model = _model(compiled=False)
    _refused(kind, pattern, model.compile, **kwargs)
    assert model._trainer is None  # nothing was kept


# --------------------------------------------------------------------------- DataLoader


@pytest.mark.parametrize("kwargs, kind, pattern", [
    ({"batch_size": 2.5}, TypeError, r"DataLoader: batch_size must be an int >= 1, got 2.5"),
    ({"batch_size": 0}, ValueError, r"DataLoader: batch_size must be an int >= 1, got 0"),
    ({"batch_size": True}, TypeError, r"DataLoader: batch_size must be an int >= 1, got True"),
    ({"shuffle": 1}, TypeError, r"DataLoader: shuffle must be True or False, got 1"),
    ({"drop_last": "no"}, TypeError, r"DataLoader: drop_last must be True or False, got 'no'"),
    ({"shard": None}, TypeError, r"DataLoader: shard must be True or False, got None"),
    ({"seed": -1}, ValueError, r"DataLoader: seed must be None or an int >= 0, got -1"),
    ({"seed": 1.5}, TypeError, r"DataLoader: seed must be None or an int >= 0, got 1.5"),
])
def test_dataloader_checks_each_argument(kwargs, kind, pattern):
    x, y = _blobs()
    _refused(kind, pattern, data.DataLoader, x, y, **kwargs)


def test_dataloader_refuses_text_and_scalars():
    x, y = _blobs()
    _refused(TypeError, r"DataLoader: x must hold numbers, got an array of strings", data.DataLoader, x.astype(str))
    _refused(TypeError, r"DataLoader: y must hold numbers, got an array of strings", data.DataLoader, x,
             y.astype(str))
    _refused(ValueError, r"DataLoader: x must have a first axis of samples", data.DataLoader, 3.0)
    _refused(ValueError, r"DataLoader: x has 24 rows but y has 5", data.DataLoader, x, y[:5])
