"""Keras's metrics, as objects that `compile(metrics=[...])` takes.

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.F1Score(average="macro")])

Each is an ``autograd_cnn.metrics.Metric``: fit and evaluate score the whole epoch (or validation
set) from its confusion matrix, as scikit-learn would score the same labels. Classes come from
the argmax of the model's outputs; a model with one output per sample decides at 0.5 and
Precision, Recall and F1Score then score the positive class, as Keras's do. Used alone,
``update_state(y_true, y_pred)`` / ``result()`` / ``reset_state()`` work as in Keras.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import metrics as _metrics
from ..errors import ArgumentError

__all__ = ["Accuracy", "CategoricalAccuracy", "F1Score", "Precision", "Recall",
           "SparseCategoricalAccuracy", "get"]


class _KerasMetric(_metrics.Metric):
    """Keras's stand-alone use on top of the Metric the Trainer reads."""

    _confusion: np.ndarray | None = None

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Count one more batch (labels, one-hot rows, probabilities or logits)."""
        if sample_weight is not None:
            raise ArgumentError(f"{type(self).__name__}.update_state: sample_weight is not supported")
        t, t_classes = _metrics.labels_of(type(self).__name__, "y_true", y_true)
        p, p_classes = _metrics.labels_of(type(self).__name__, "y_pred", y_pred)
        k = max(t_classes or 0, p_classes or 0, int(max(t.max(initial=0), p.max(initial=0))) + 1, 2)
        cm = _metrics.confusion_matrix(t, p, num_classes=k)
        old = self._confusion if self._confusion is not None else np.zeros((0, 0), np.int64)
        if len(old) < k:
            grown = np.zeros((k, k), np.int64)
            grown[:len(old), :len(old)] = old
            old = grown
        old[:k, :k] += cm
        self._confusion = old

    def result(self) -> float:
        """The score of every sample counted since the last ``reset_state``."""
        return self.from_confusion(self._confusion if self._confusion is not None else np.zeros((2, 2)))

    def reset_state(self) -> None:
        self._confusion = None


def _unsupported(where: str, **given: Any) -> None:
    for name, value in given.items():
        if value is not None:
            raise ArgumentError(f"{where}: {name}={value!r} is not supported here; leave it None (classes "
                                "are the argmax of the outputs, or a decision at 0.5 for one output)")


class Accuracy(_KerasMetric):
    """The fraction of samples whose predicted class is the true one."""

    def __init__(self, name: str = "accuracy", dtype: Any = None) -> None:
        super().__init__("accuracy", name)


class SparseCategoricalAccuracy(_KerasMetric):
    """Accuracy against integer labels (the argmax of the outputs)."""

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype: Any = None) -> None:
        super().__init__("accuracy", name)


class CategoricalAccuracy(_KerasMetric):
    """Accuracy against one-hot labels (the argmax of both)."""

    def __init__(self, name: str = "categorical_accuracy", dtype: Any = None) -> None:
        super().__init__("accuracy", name)


class Precision(_KerasMetric):
    """Of the samples predicted as a class, the fraction that are: macro-averaged over the classes,
    or of ``class_id`` alone; the positive class for one output per sample."""

    def __init__(self, thresholds: Any = None, top_k: Any = None, class_id: int | None = None,
                 name: str = "precision", dtype: Any = None, average: str = "macro") -> None:
        _unsupported("Precision", thresholds=thresholds, top_k=top_k)
        super().__init__("precision", name, average, class_id)


class Recall(_KerasMetric):
    """Of the samples of a class, the fraction predicted as it: macro-averaged over the classes,
    or of ``class_id`` alone; the positive class for one output per sample."""

    def __init__(self, thresholds: Any = None, top_k: Any = None, class_id: int | None = None,
                 name: str = "recall", dtype: Any = None, average: str = "macro") -> None:
        _unsupported("Recall", thresholds=thresholds, top_k=top_k)
        super().__init__("recall", name, average, class_id)


class F1Score(_KerasMetric):
    """The harmonic mean of precision and recall per class, averaged as ``average`` says
    ("macro", "micro" or "weighted"; per-class scores: ``metrics.precision_recall_f1(average=None)``)."""

    def __init__(self, average: str = "macro", threshold: Any = None, name: str = "f1_score",
                 dtype: Any = None) -> None:
        _unsupported("F1Score", threshold=threshold)
        if average not in ("macro", "micro", "weighted"):
            raise ArgumentError(f"F1Score: average must be 'macro', 'micro' or 'weighted', got {average!r}; "
                                "for one score per class call metrics.precision_recall_f1(y, p, average=None)")
        super().__init__("f1", name, average)


_BY_NAME = {"accuracy": Accuracy, "acc": Accuracy, "sparse_categorical_accuracy": SparseCategoricalAccuracy,
            "categorical_accuracy": CategoricalAccuracy, "precision": Precision, "recall": Recall,
            "f1": F1Score, "f1_score": F1Score}


def get(identifier: Any) -> _metrics.Metric:
    """The metric a name stands for (``"f1"``, ``"precision"``, ...), or the metric given."""
    if isinstance(identifier, _metrics.Metric):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        name = identifier.lower()
        return _BY_NAME[name]() if name in ("acc", "f1", "accuracy") else _BY_NAME[name](name=name)
    return _metrics.metric("keras.metrics.get", identifier)  # refuses the rest, naming it
