"""Precision, recall and F1 in fit and evaluate: scores of the whole epoch or validation set, equal
to scikit-learn's on the same predictions; names, History keys and the Keras metric objects."""
from __future__ import annotations

import os

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import keras, metrics, nn, optim

sk = pytest.importorskip("sklearn.metrics")


def _blobs(n=300, seed=0, classes=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    centers = rng.normal(scale=1.6, size=(classes, 2))
    return (centers[y] + 0.8 * rng.standard_normal((n, 2))).astype("float32"), y


def _model(outputs=4, softmax=True):
    layers = [nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, outputs)]
    return nn.Sequential(*layers, nn.Softmax()) if softmax else nn.Sequential(*layers)


def test_validation_and_evaluate_scores_equal_scikit_learns_on_predict(backend):
    x, y = _blobs()
    ag.manual_seed(0)
    model = _model(softmax=False)
    model.compile(optim.Adam(model.parameters(), lr=0.02), metrics=["accuracy", "precision", "recall", "f1"])
    history = model.fit(x[:200], y[:200], epochs=2, batch_size=16, verbose=0,
                        validation_data=(x[200:], y[200:]))
    for key in ("accuracy", "precision", "recall", "f1", "val_accuracy", "val_precision", "val_recall", "val_f1"):
        assert len(history.history[key]) == 2 and 0 <= history.history[key][-1] <= 1
    predicted = model.predict(x[200:]).argmax(axis=1)
    p, r, f1, _ = sk.precision_recall_fscore_support(y[200:], predicted, average="macro", zero_division=0)
    # batches of 7 do not divide the 100 samples: a mean of per-batch scores would differ
    loss, accuracy, precision, recall, f1_epoch = model.evaluate(x[200:], y[200:], batch_size=7, verbose=0)
    assert (accuracy, precision, recall, f1_epoch) == pytest.approx(
        (sk.accuracy_score(y[200:], predicted), p, r, f1), rel=1e-9)
    assert history.history["val_f1"][-1] == pytest.approx(f1, rel=1e-9)


def test_a_single_accuracy_metric_still_evaluates_to_a_pair():
    x, y = _blobs(60)
    model = _model()
    model.compile("adam", metrics=["acc"])
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy == pytest.approx((model.predict(x).argmax(axis=1) == y).mean())


def test_keras_metric_objects_name_their_history_keys():
    x, y = _blobs(120)
    ag.manual_seed(1)
    model = _model()
    model.compile("adam", metrics=[keras.metrics.SparseCategoricalAccuracy(), keras.metrics.Precision(),
                                   keras.metrics.Recall(class_id=2), keras.metrics.F1Score(average="weighted"),
                                   "categorical_accuracy"])
    history = model.fit(x, y, epochs=1, batch_size=32, verbose=0, validation_data=(x, y))
    assert set(history.history) >= {"sparse_categorical_accuracy", "precision", "recall", "f1_score",
                                    "val_f1_score", "val_recall", "categorical_accuracy"}
    predicted = model.predict(x).argmax(axis=1)
    assert history.history["val_recall"][-1] == pytest.approx(
        sk.recall_score(y, predicted, labels=[2], average="macro", zero_division=0))
    assert history.history["val_f1_score"][-1] == pytest.approx(
        sk.f1_score(y, predicted, average="weighted", zero_division=0))


def test_one_output_per_sample_scores_the_positive_class():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 2)).astype("float32")
    y = (x[:, 0] + 0.3 * rng.normal(size=80) > 0).astype("float32").reshape(-1, 1)
    model = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())
    model.compile("adam", "mse", metrics=["precision", "recall"])
    _, precision, recall = model.evaluate(x, y, batch_size=9, verbose=0)
    predicted = model.predict(x)[:, 0] > 0.5
    assert precision == pytest.approx(sk.precision_score(y[:, 0] > 0.5, predicted, zero_division=0))
    assert recall == pytest.approx(sk.recall_score(y[:, 0] > 0.5, predicted, zero_division=0))


def test_keras_metrics_work_alone_and_through_get():
    f1 = keras.metrics.get("f1")
    assert isinstance(f1, keras.metrics.F1Score) and f1.name == "f1_score"
    f1.update_state([0, 1, 2], np.eye(3)[[0, 1, 1]])
    f1.update_state([3], [3])
    assert f1.result() == pytest.approx(sk.f1_score([0, 1, 2, 3], [0, 1, 1, 3], average="macro", zero_division=0))
    f1.reset_state()
    assert f1.result() == 0
    assert keras.metrics.get(keras.metrics.Recall()).name == "recall"
    assert isinstance(keras.metrics.get("sparse_categorical_accuracy"), metrics.Metric)
    with pytest.raises(ag.ArgumentError, match="average"):
        keras.metrics.F1Score(average=None)
    with pytest.raises(ag.ArgumentError, match="thresholds"):
        keras.metrics.Precision(thresholds=0.3)
    with pytest.raises(ag.ArgumentError, match="two metrics would be logged as 'f1'"):
        _model().compile("adam", metrics=["f1", "F1"])
    with pytest.raises(ag.ArgumentError, match="unknown metric 'auc'"):
        keras.metrics.get("auc")


@pytest.mark.skipif(os.environ.get("AUTOGRAD_CNN_BACKEND") == "cupy", reason="host arrays compared")
def test_the_confusion_matrix_stays_on_the_backend_between_reads(monkeypatch):
    """add() keeps a backend array; only read() converts it (the Trainer reads a few times a second)."""
    from autograd_cnn.nn import training

    sums = training._RunningSums(ag.get_backend(), "fit", [metrics.metric("compile", "f1")],
                                 training.current_world())
    reads = []
    monkeypatch.setattr(sums.backend, "to_host", lambda a: reads.append(a) or np.asarray(a))
    out = ag.tensor(np.eye(3)[[0, 1, 2, 2]])
    for _ in range(3):
        sums.add(ag.tensor(0.5), out, ag.tensor(np.array([0, 1, 1, 2])))
    assert reads == []
    np.testing.assert_array_equal(sums.confusion, 3 * metrics.confusion_matrix([0, 1, 1, 2],
                                                                                              [0, 1, 2, 2]))
    assert sums.read()["f1"] == pytest.approx(sk.f1_score([0, 1, 1, 2], [0, 1, 2, 2], average="macro"))
