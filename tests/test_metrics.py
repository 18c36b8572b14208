"""autograd_cnn.metrics against scikit-learn on the same labels, and its refusals."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autograd_cnn as ag
from autograd_cnn import metrics
from autograd_cnn.errors import ArgumentError, ArgumentTypeError, ShapeError

sk = pytest.importorskip("sklearn.metrics")

AVERAGES = ("macro", "micro", "weighted", None)


def sk_prf(t, p, average, labels=None):
    return sk.precision_recall_fscore_support(t, p, average=average, labels=labels, zero_division=0)[:3]


def assert_same(ours, theirs):
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def counts(report: str) -> str:
    """scikit-learn's report with its supports as counts: it writes them as floats ("1.0") when no
    prediction is right, and as ints otherwise."""
    return re.sub(r" (\d+)\.0$", r"   \1", report, flags=re.M)


labels = st.integers(1, 60).flatmap(
    lambda n: st.tuples(st.lists(st.integers(0, 6), min_size=n, max_size=n),
                        st.lists(st.integers(0, 6), min_size=n, max_size=n)))


@settings(max_examples=80, deadline=None)
@given(labels)
def test_every_function_equals_scikit_learn_on_generated_labels(pair):
    t, p = (np.array(v) for v in pair)
    np.testing.assert_array_equal(metrics.confusion_matrix(t, p), sk.confusion_matrix(t, p))
    for average in AVERAGES:
        assert_same(metrics.precision_recall_f1(t, p, average), sk_prf(t, p, average))
    assert metrics.classification_report(t, p) == counts(sk.classification_report(t, p, zero_division=0))


@settings(max_examples=40, deadline=None)
@given(labels)
def test_given_classes_equal_scikit_learn_with_those_labels(pair):
    t, p = (np.array(v) for v in pair)
    k = 8
    np.testing.assert_array_equal(metrics.confusion_matrix(t, p, num_classes=k),
                                  sk.confusion_matrix(t, p, labels=range(k)))
    for average in AVERAGES:
        assert_same(metrics.precision_recall_f1(t, p, average, num_classes=k), sk_prf(t, p, average, range(k)))
    names = [f"class {i}" for i in range(k)]
    theirs = sk.classification_report(t, p, labels=range(k), target_names=names, zero_division=0)
    assert metrics.classification_report(t, p, target_names=names) == counts(theirs)


def test_one_hot_probabilities_logits_and_tensors_read_as_their_argmax():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 4, 40)
    logits = rng.normal(size=(40, 4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = logits.argmax(axis=1)
    want = metrics.confusion_matrix(t, pred, num_classes=4)
    one_hot = np.eye(4)[t]
    for y_true, y_pred in ((t, logits), (t, probs), (one_hot, pred), (one_hot, probs),
                           (ag.tensor(t), ag.tensor(logits)), (t.reshape(-1, 1), pred.astype(float))):
        np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred), want)
    assert metrics.precision_recall_f1(t, ag.tensor(probs), "micro")[0] == pytest.approx((pred == t).mean())


def test_rows_of_scores_make_every_class_count_even_the_unseen():
    t = np.array([0, 1, 1])
    scores = np.eye(5)[[0, 1, 0]]  # five classes; 2, 3 and 4 never occur
    assert metrics.confusion_matrix(t, scores).shape == (5, 5)


def test_classification_report_reads_like_scikit_learns():
    t = np.array([0, 0, 1, 2, 2, 2])
    p = np.array([0, 1, 1, 2, 2, 0])
    text = metrics.classification_report(t, p, target_names=["T-shirt", "Trouser", "Pullover"])
    assert text.splitlines()[0].split() == ["precision", "recall", "f1-score", "support"]
    assert "    accuracy                           0.67         6" in text
    assert text.splitlines()[2].split() == ["T-shirt", "0.50", "0.50", "0.50", "2"]


@pytest.mark.parametrize("call, name, error", [
    (lambda: metrics.confusion_matrix([0, 1], [0, 1, 1]), "y_pred", ShapeError),
    (lambda: metrics.confusion_matrix([0, 5], [0, 1], num_classes=3), "y_true", ArgumentError),
    (lambda: metrics.confusion_matrix([0, 1], [0, -1], num_classes=3), "y_pred", ArgumentError),
    (lambda: metrics.confusion_matrix([0, 1], [0, 0.5]), "y_pred", ArgumentError),
    (lambda: metrics.confusion_matrix([], []), "y_true", ArgumentError),
    (lambda: metrics.confusion_matrix(["a"], [0]), "y_true", ArgumentTypeError),
    (lambda: metrics.confusion_matrix([0], [0], num_classes=0), "num_classes", ArgumentError),
    (lambda: metrics.precision_recall_f1([0], [0], average="binary"), "average", ArgumentError),
    (lambda: metrics.classification_report([0, 3], [0, 1], target_names=["a", "b"]), "y_true", ArgumentError),
    (lambda: metrics.classification_report([0], [0], target_names="ab"), "target_names", ArgumentTypeError),
])
def test_bad_input_is_refused_naming_the_argument(call, name, error):
    with pytest.raises(error, match=name):
        call()


def test_training_metrics_score_a_confusion_matrix_as_scikit_learn_scores_its_labels():
    rng = np.random.default_rng(1)
    t, p = rng.integers(0, 6, 200), rng.integers(0, 6, 200)
    p[p == 5] = 4  # class 5 occurs but is never predicted
    cm = metrics.confusion_matrix(t, p, num_classes=10)  # 6..9 neither occur nor are predicted
    for name in ("precision", "recall", "f1"):
        want = sk_prf(t, p, "macro")[("precision", "recall", "f1").index(name)]
        assert metrics.metric("compile", name).from_confusion(cm) == pytest.approx(want, rel=1e-12)
    assert metrics.metric("compile", "acc").from_confusion(cm) == pytest.approx((t == p).mean())
    assert metrics.metric("compile", "acc").name == "accuracy"
    binary = metrics.confusion_matrix([0, 1, 1, 0], [1, 1, 0, 0])
    assert metrics.Metric("precision").from_confusion(binary, one_output=True) == 0.5
    with pytest.raises(ArgumentError, match="unknown metric 'auc'"):
        metrics.metric("compile", "auc")
