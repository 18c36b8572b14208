"""Fuzzing fit, evaluate, predict and DataLoader with hypothesis: generated inputs (floats, ints,
bools, strings, objects, complex numbers, ragged lists, single numbers, NaN, tensors), labels
(class indices, whole and fractional floats, negatives, text) and settings (epochs, batch_size,
shuffle, verbose, validation_data, callbacks, seed, ...), valid and not.

The property, for every call: a result (of the promised kind) exactly when every argument is
valid, else one of our errors (an ``ag.AutogradError``) that names an argument that is not, or
the layer or loss that refused the data. Never a raw NumPy or Python exception; never a silent
coercion (a call that works although an argument is wrong).

Bounded: derandomized, a few seconds in all. AUTOGRAD_CNN_FUZZ_EXAMPLES=N tries N fresh random
examples per test instead.
"""
from __future__ import annotations

import collections
import os
import re
from typing import Any

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import autograd_cnn as ag  # noqa: E402
from autograd_cnn import data, nn  # noqa: E402

_EXPLORE = int(os.environ.get("AUTOGRAD_CNN_FUZZ_EXAMPLES", "0"))
FEATURES, CLASSES = 2, 3


def fuzz(examples: int) -> Any:
    return settings(max_examples=_EXPLORE or examples, deadline=None, derandomize=not _EXPLORE, database=None,
                    suppress_health_check=list(HealthCheck))


# --------------------------------------------------------------------------- generated arguments
# Each strategy draws (value, problem): problem is None for a valid value, else the words that a
# refusal must name (the argument, or the layer or loss that refuses such data).

def _rows(n: int, width: int = FEATURES) -> np.ndarray:
    return np.linspace(-1, 1, n * width, dtype=np.float32).reshape(n, width)


@st.composite
def inputs(draw: Any, n: int, name: str = "x", model: bool = True) -> tuple:
    """Samples for fit (``model``: a Linear(2, ...) reads them) or for a DataLoader (any numbers)."""
    kind = draw(st.sampled_from(["float32", "float64", "int", "bool", "tensor", "list", "strings", "objects",
                                 "complex", "ragged", "number", "nan", "wide", "flat"]))
    x = _rows(n)
    layer = ["Linear"] if model else None  # numbers of another shape: the first layer refuses them
    if kind == "float64":
        return x.astype(np.float64), None
    if kind == "int":
        return (x * 3).astype(np.int64), None
    if kind == "bool":
        return x > 0, None
    if kind == "tensor":
        return ag.tensor(x), None
    if kind == "list":
        return x.tolist(), None
    if kind == "strings":
        return x.astype(str), [name]
    if kind == "objects":
        return np.array([[None, 1.0]] * n, dtype=object), [name]
    if kind == "complex":
        return x.astype(np.complex64), [name]
    if kind == "ragged":
        return [[1.0, 2.0]] * (n - 1) + [[1.0]], [name] if n > 1 else layer
    if kind == "number":
        return 1.5, [name]
    if kind == "nan":  # refused by fit, evaluate and predict; data to a DataLoader
        x = x.copy()
        x[draw(st.integers(0, n - 1)), 0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return x, [name] if model else None
    if kind == "wide":
        return _rows(n, FEATURES + 1), layer
    if kind == "flat":  # fit refuses it (a layer would read it as one sample); data to a DataLoader
        return x[:, 0].copy(), [name] if model else None
    return x, None


@st.composite
def labels(draw: Any, n: int, name: str = "y", classes: bool = True) -> tuple:
    """Class indices for fit's sparse cross-entropy (``classes``), or targets for a DataLoader."""
    kind = draw(st.sampled_from(["int", "uint8", "whole floats", "list", "tensor", "fractions", "negative",
                                 "too large", "strings", "class names", "bool", "nan", "short", "column"]))
    y = np.arange(n) % CLASSES
    loss = ["cross_entropy"] if classes else None  # numbers the loss refuses, naming itself and the values
    if kind == "uint8":
        return y.astype(np.uint8), None
    if kind == "whole floats":
        return y.astype(np.float32), None
    if kind == "list":
        return y.tolist(), None
    if kind == "tensor":
        return ag.tensor(y), None
    if kind == "fractions":
        return y + 0.5, [name] if classes else None
    if kind == "negative":
        return y - 1, [name] if classes else None
    if kind == "too large":
        return y + CLASSES, loss
    if kind == "strings":
        return y.astype(str), [name]
    if kind == "class names":
        return np.array(["cat", "dog", "bird"])[y], [name]
    if kind == "bool":
        return y > 0, [name] if classes else None
    if kind == "nan":
        return np.where(np.arange(n) == n - 1, np.nan, y), [name] if classes else None
    if kind == "short":
        return y[:-1], [name]
    if kind == "column":
        return y[:, None], loss
    return y, None


def counts(name: str) -> Any:
    """An int >= 1 (valid) or anything else."""
    good = st.integers(1, 4).map(lambda v: (v, None))
    bad = st.sampled_from([0, -1, 2.5, 2.0, True, "3", None, np.float32(2)]).map(lambda v: (v, [name]))
    return st.one_of(good, good, st.integers(1, 4).map(lambda v: (np.int64(v), None)), bad)


def flags(name: str) -> Any:
    return st.one_of(st.booleans().map(lambda v: (v, None)),
                     st.sampled_from([1, 0, "yes", None]).map(lambda v: (v, [name])))


def verbosity() -> Any:
    return st.one_of(st.sampled_from([0, 1, 2, True, False]).map(lambda v: (v, None)),
                     st.sampled_from([3, -1, "auto", 1.0, None]).map(lambda v: (v, ["verbose"])))


@st.composite
def callback_lists(draw: Any) -> tuple:
    kind = draw(st.sampled_from(["none", "empty", "one", "function", "bare"]))
    if kind == "none":
        return None, None
    if kind == "empty":
        return [], None
    if kind == "one":
        return [nn.Callback()], None
    if kind == "function":
        return [print], ["callbacks"]
    return nn.Callback(), ["callbacks"]


@st.composite
def validation(draw: Any, n: int) -> tuple:
    kind = draw(st.sampled_from(["none", "pair", "pair", "single", "text"]))
    if kind == "none":
        return None, None
    if kind == "single":
        return (_rows(n),), ["validation_data"]
    if kind == "text":
        return "xy", ["validation_data"]
    (x, x_bad), (y, y_bad) = draw(inputs(n)), draw(labels(n))
    problem = None if not (x_bad or y_bad) else (x_bad or []) + (y_bad or []) + ["validation_data"]
    return (x, y), problem


# --------------------------------------------------------------------------- the property

def _model() -> nn.Module:
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(FEATURES, 4), nn.ReLU(), nn.Linear(4, CLASSES))
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    return model


OUTCOMES: collections.Counter = collections.Counter()  # (test, "result" or "refused")


@pytest.fixture(scope="module", autouse=True)
def _both_outcomes_are_tried():
    yield
    # A test whose every call was refused (or none was) would pass without testing half the property.
    for name in ("fit", "evaluate", "predict", "DataLoader"):
        assert OUTCOMES[name, "result"] >= 5 and OUTCOMES[name, "refused"] >= 5, dict(OUTCOMES)


def _names(message: str, words: list[str]) -> bool:
    return any(re.search(rf"(?<![\w.]){re.escape(w)}\b", message) for w in words)


def check(what: str, call: Any, arguments: dict) -> Any:
    """Run ``call()``; assert the property; return the result, or None after a refusal."""
    problems = {name: words for name, (_, words) in arguments.items() if words}
    try:
        result = call()
    except ag.AutogradError as err:
        assert problems, f"refused valid arguments: {type(err).__name__}: {err}"
        words = [w for ws in problems.values() for w in ws]
        assert _names(str(err), words), f"{type(err).__name__}: {err}\nshould name one of {words}"
        assert isinstance(err, (ValueError, TypeError)), type(err).__mro__  # and the matching built-in
        OUTCOMES[what, "refused"] += 1
        return None
    assert not problems, f"no error for {problems}: a silent coercion"
    OUTCOMES[what, "result"] += 1
    return result


def _values(arguments: dict) -> dict:
    return {name: value for name, (value, _) in arguments.items()}


@fuzz(120)
@given(st.data())
def test_fit(draws):
    n = draws.draw(st.integers(1, 9), label="n")
    arguments = {"x": draws.draw(inputs(n)), "y": draws.draw(labels(n)), "epochs": draws.draw(counts("epochs")),
                 "batch_size": draws.draw(counts("batch_size")), "shuffle": draws.draw(flags("shuffle")),
                 "verbose": draws.draw(verbosity()), "validation_data": draws.draw(validation(n)),
                 "callbacks": draws.draw(callback_lists())}
    history = check("fit", lambda: _model().fit(**_values(arguments)), arguments)
    if history is not None:
        assert isinstance(history, nn.History)
        assert len(history.history["loss"]) == arguments["epochs"][0]
        assert all(np.isfinite(v) for values in history.history.values() for v in values)


@fuzz(60)
@given(st.data())
def test_evaluate(draws):
    n = draws.draw(st.integers(1, 9), label="n")
    arguments = {"x": draws.draw(inputs(n)), "y": draws.draw(labels(n)),
                 "batch_size": draws.draw(counts("batch_size")), "verbose": draws.draw(verbosity())}
    result = check("evaluate", lambda: _model().evaluate(**_values(arguments)), arguments)
    if result is not None:
        loss, accuracy = result
        assert np.isfinite(loss) and 0 <= accuracy <= 1


@fuzz(60)
@given(st.data())
def test_predict(draws):
    n = draws.draw(st.integers(1, 9), label="n")
    arguments = {"x": draws.draw(inputs(n)), "batch_size": draws.draw(counts("batch_size")),
                 "verbose": draws.draw(verbosity())}
    probabilities = check("predict", lambda: _model().predict(**_values(arguments)), arguments)
    if probabilities is not None:
        assert isinstance(probabilities, np.ndarray) and probabilities.shape == (n, CLASSES)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


@fuzz(80)
@given(st.data())
def test_dataloader(draws):
    n = draws.draw(st.integers(1, 9), label="n")
    x = draws.draw(inputs(n, model=False))
    y = draws.draw(st.one_of(st.just((None, None)), labels(n, classes=False)))
    seed = draws.draw(st.one_of(st.sampled_from([None, 0, 7]).map(lambda v: (v, None)),
                                st.sampled_from([-1, 1.5, "7", True]).map(lambda v: (v, ["seed"]))))
    arguments = {"x": x, "y": y, "batch_size": draws.draw(counts("batch_size")),
                 "shuffle": draws.draw(flags("shuffle")), "seed": seed, "drop_last": draws.draw(flags("drop_last")),
                 "shard": draws.draw(flags("shard"))}
    (size, size_bad), drop = arguments["batch_size"], arguments["drop_last"][0]
    if drop is True and not size_bad and size > n:  # drop_last would leave no batch: refused too
        arguments["drop_last"] = (drop, ["drop_last"])
    loader = check("DataLoader", lambda: data.DataLoader(**_values(arguments)), arguments)
    if loader is not None:
        batches = list(loader)
        rows = sum(len(b[0] if isinstance(b, tuple) else b) for b in batches)
        size = arguments["batch_size"][0]
        assert rows == (n // size * size if arguments["drop_last"][0] else n) and len(batches) == len(loader)
