"""How good a classifier is: the confusion matrix, precision, recall and F1, as scikit-learn counts them.

    from autograd_cnn import metrics
    cm = metrics.confusion_matrix(y_test, model.predict(x_test))    # rows: true class; columns: predicted
    p, r, f1 = metrics.precision_recall_f1(y_test, probabilities, average="macro")
    print(metrics.classification_report(y_test, probabilities, target_names=names))

Each takes labels, one-hot rows, probabilities or logits (the last two by their argmax), as NumPy
arrays or tensors. Without ``num_classes`` (or ``target_names``), the classes are the labels
that occur in either argument, sorted, as in scikit-learn; rows of scores say how many classes
there are. A class that is never predicted has precision 0, as scikit-learn's ``zero_division=0``.

``Metric`` is what ``compile(metrics=[...])`` understands: the Trainer sums a confusion matrix
over the batches of an epoch on the backend and turns it into these scores with ``from_confusion``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, ShapeError, shape_str

_AVERAGES = ("macro", "micro", "weighted", None)


def _host(name: str, where: str, value: Any) -> np.ndarray:
    """``value`` as a host NumPy array (a tensor or a CuPy array is copied to the host)."""
    if hasattr(value, "numpy") and hasattr(value, "backend_object"):  # a Tensor
        return np.asarray(value.numpy())
    if hasattr(value, "get") and type(value).__module__.startswith("cupy"):
        return np.asarray(value.get())
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        array = np.asarray(value, dtype=object)
    if array.dtype.kind not in "biuf":
        raise ArgumentTypeError(f"{where}: {name} must hold numbers (class labels, one-hot rows, "
                                f"probabilities or logits), got {type(value).__name__} of {array.dtype}")
    return array


def labels_of(where: str, name: str, value: Any) -> tuple[np.ndarray, int | None]:
    """(class labels as int64, the number of classes the rows of scores imply or None) for
    labels ``(N,)``, one column ``(N, 1)``, or rows of one-hot, probabilities or logits ``(N, C)``."""
    array = _host(name, where, value)
    if array.ndim == 2 and array.shape[1] > 1:
        return array.argmax(axis=1).astype(np.int64), array.shape[1]
    if array.ndim == 2:
        array = array[:, 0]
    if array.ndim != 1:
        raise ShapeError(f"{where}: {name} must be labels (N,) or rows of scores (N, C), got shape "
                         f"{shape_str(array.shape)}")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ArgumentError(f"{where}: {name} holds numbers that are not class labels "
                                f"(e.g. {array[~(array == np.round(array))][:1].tolist() or 'NaN'}); "
                                "give integer labels, or rows of probabilities or logits (N, C)")
    return array.astype(np.int64), None


def _pair(where: str, y_true: Any, y_pred: Any, num_classes: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true labels, predicted labels, the classes in order): checked, the same length, non-empty."""
    t, t_classes = labels_of(where, "y_true", y_true)
    p, p_classes = labels_of(where, "y_pred", y_pred)
    if len(t) != len(p):
        raise ShapeError(f"{where}: y_true and y_pred must hold the same number of samples, got "
                         f"{len(t)} and {len(p)}")
    if len(t) == 0:
        raise ArgumentError(f"{where}: y_true and y_pred hold no samples")
    if num_classes is not None:
        from . import checks

        num_classes = checks.integer(where, "num_classes", num_classes, minimum=1)
    else:
        num_classes = max(t_classes or 0, p_classes or 0) or None
    if num_classes is None:
        return t, p, np.union1d(t, p)
    for name, labels in (("y_true", t), ("y_pred", p)):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if len(bad):
            raise ArgumentError(f"{where}: {name} holds label {int(bad[0])}, outside the {num_classes} classes "
                                f"0..{num_classes - 1}; give num_classes (or target_names) for every class")
    return t, p, np.arange(num_classes)


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """The counts ``cm[i, j]`` of samples of true class i predicted as class j (int64, K x K)."""
    t, p, classes = _pair("confusion_matrix", y_true, y_pred, num_classes)
    k = len(classes)
    ti, pi = np.searchsorted(classes, t), np.searchsorted(classes, p)
    return np.bincount(ti * k + pi, minlength=k * k).reshape(k, k).astype(np.int64)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, and 0 where den is 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def from_confusion(cm: Any, average: str | None = "macro", present_only: bool = True) -> tuple:
    """(precision, recall, f1) from a confusion matrix; ``present_only`` leaves out the classes
    that neither occur nor are predicted (scikit-learn does not see those)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp, predicted, true = np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)
    if present_only and average in ("macro", "weighted"):
        seen = (predicted + true) > 0
        tp, predicted, true = tp[seen], predicted[seen], true[seen]
    if average == "micro":
        tp, predicted, true = tp.sum(keepdims=True), predicted.sum(keepdims=True), true.sum(keepdims=True)
    precision, recall = _divide(tp, predicted), _divide(tp, true)
    f1 = _divide(2 * tp, true + predicted)
    if average is None:
        return precision, recall, f1
    weights = true if average == "weighted" else np.ones_like(true)
    if weights.sum() == 0:
        return 0.0, 0.0, 0.0
    return tuple(float(np.average(v, weights=weights)) for v in (precision, recall, f1))


def precision_recall_f1(y_true: Any, y_pred: Any, average: str | None = "macro",
                        num_classes: int | None = None) -> tuple:
    """``(precision, recall, f1)``: floats averaged as ``average`` says ("macro": each class
    alike; "micro": over all samples, which is the accuracy; "weighted": by each class's count),
    or arrays with one entry per class for ``average=None``."""
    if not any(average is a or average == a for a in _AVERAGES):
        raise ArgumentError(f"precision_recall_f1: average must be 'macro', 'micro', 'weighted' or None, "
                            f"got {average!r}")
    return from_confusion(confusion_matrix(y_true, y_pred, num_classes), average, present_only=False)


def classification_report(y_true: Any, y_pred: Any, target_names: Sequence[str] | None = None,
                          digits: int = 2) -> str:
    """scikit-learn's text report: precision, recall, F1 and support per class, then the accuracy
    and the macro and weighted averages. ``target_names`` names classes 0, 1, ...; every label
    must be one of them; ``digits`` the decimals shown."""
    from . import checks

    digits = checks.integer("classification_report", "digits", digits, minimum=0)
    if target_names is not None:
        if isinstance(target_names, str) or not isinstance(target_names, Sequence) and \
                not isinstance(target_names, np.ndarray):
            raise ArgumentTypeError(f"classification_report: target_names must be a list of class names, "
                                    f"got {target_names!r}")
        target_names = [str(n) for n in target_names]
        if not target_names:
            raise ArgumentError("classification_report: target_names is empty")
    cm = confusion_matrix(y_true, y_pred, len(target_names) if target_names else None)
    if target_names is None:
        t, p, classes = _pair("classification_report", y_true, y_pred, None)
        target_names = [str(c) for c in classes]
    p, r, f1 = from_confusion(cm, None, present_only=False)
    support = cm.sum(axis=1).astype(np.int64)
    width = max(max(len(n) for n in target_names), len("weighted avg"), digits)
    headers = ("precision", "recall", "f1-score", "support")
    text = ("{:>{width}s} " + " {:>9}" * 4).format("", *headers, width=width) + "\n\n"
    row = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    for name, *values in zip(target_names, p, r, f1, support):
        text += row.format(name, *values, width=width, digits=digits)
    text += "\n"
    total = int(support.sum())
    accuracy = from_confusion(cm, "micro", present_only=False)[2]
    text += ("{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f} {:>9}\n").format(
        "accuracy", "", "", accuracy, total, width=width, digits=digits)
    for average in ("macro", "weighted"):
        text += row.format(f"{average} avg", *from_confusion(cm, average, present_only=False), total,
                           width=width, digits=digits)
    return text


# --------------------------------------------------------------------------- metrics in training

_NAMES = {"accuracy": "accuracy", "acc": "accuracy", "sparse_categorical_accuracy": "accuracy",
          "categorical_accuracy": "accuracy", "precision": "precision", "recall": "recall",
          "f1": "f1", "f1_score": "f1"}


class Metric:
    """A score that ``compile(metrics=[...])`` computes over a whole epoch (or validation set) from
    the confusion matrix of all its samples: ``kind`` is "accuracy", "precision", "recall" or
    "f1"; ``average`` as in ``precision_recall_f1``, or ``class_id`` for one class's score.
    ``name`` is its key in the logs and the History (``val_`` + name for the validation set)."""

    def __init__(self, kind: str, name: str | None = None, average: str | None = "macro",
                 class_id: int | None = None) -> None:
        where = type(self).__name__
        if kind not in ("accuracy", "precision", "recall", "f1"):
            raise ArgumentError(f"{where}: kind must be 'accuracy', 'precision', 'recall' or 'f1', got {kind!r}")
        if kind != "accuracy" and class_id is None and average not in ("macro", "micro", "weighted"):
            raise ArgumentError(f"{where}: average must be 'macro', 'micro' or 'weighted' "
                                f"(or give class_id for one class), got {average!r}")
        if class_id is not None:
            from . import checks

            class_id = checks.integer(where, "class_id", class_id, minimum=0)
        if name is not None and not isinstance(name, str):
            raise ArgumentTypeError(f"{where}: name must be a str, got {name!r}")
        self.kind, self.average, self.class_id = kind, average, class_id
        self.name = name or kind

    def from_confusion(self, cm: np.ndarray, one_output: bool = False) -> float:
        """The score of the samples counted in ``cm`` (K x K, rows true, columns predicted);
        ``one_output``: a 2 x 2 matrix from a model with one output per sample (a decision at 0.5),
        scored by its positive class, as Keras's Precision and Recall do."""
        cm = np.asarray(cm, dtype=np.float64)
        if self.kind == "accuracy":
            return float(np.trace(cm) / max(cm.sum(), 1.0))
        which = ("precision", "recall", "f1").index(self.kind)
        if self.class_id is not None:
            if self.class_id >= len(cm):
                raise ArgumentError(f"{type(self).__name__}: class_id {self.class_id} is outside the model's "
                                    f"{len(cm)} classes")
            return float(from_confusion(cm, None, present_only=False)[which][self.class_id])
        if one_output and len(cm) == 2:
            return float(from_confusion(cm, None, present_only=False)[which][1])
        return from_confusion(cm, self.average, present_only=True)[which]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def metric(where: str, identifier: Any) -> Metric:
    """The Metric a name in ``compile(metrics=[...])`` stands for, or the Metric given."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _NAMES:
        name = identifier.lower()
        return Metric(_NAMES[name], name="accuracy" if name == "acc" else name)
    if isinstance(identifier, str):
        raise ArgumentError(f"{where}: unknown metric {identifier!r}; use one of {sorted(_NAMES)} "
                            "or a keras.metrics object")
    raise ArgumentTypeError(f"{where}: a metric must be a name such as 'accuracy' or 'f1', or a "
                            f"keras.metrics object, got {type(identifier).__name__}")
