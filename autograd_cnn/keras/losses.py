"""Keras's losses, as functions and as classes, in Keras's argument order ``(y_true, y_pred)``.

    model.compile(loss=keras.losses.categorical_crossentropy, ...)        # a function
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), ...)

A function gives one loss per sample (the last axis reduced), as Keras's; a class instance
reduces them (``reduction="sum_over_batch_size"``, the mean, by default). Both are written with
the engine's ops, so they differentiate; ``from_logits=False`` (Keras's default) reads
probabilities, normalised and clipped to ``[1e-7, 1 - 1e-7]`` as Keras does. ``compile`` knows
these losses by their ``keras_kind``: a classification loss on a model that ends in softmax then
reads the softmax's input, as stable as a loss on logits (nn/training.py, ``CompiledLoss``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import checks
from .. import functional as F
from ..autograd import as_tensor
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, shape_str
from ..tensor import Tensor

EPSILON = 1e-7  # Keras's backend.epsilon(): the clip that keeps log away from 0
_REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "none", None)


def _pair(op: str, y_true: Any, y_pred: Any) -> tuple[Tensor, Tensor]:
    """y_pred as a float tensor and y_true as a constant on its backend."""
    y_pred = as_tensor(op, y_pred)
    if y_pred.dtype.kind != "f":
        y_pred = y_pred.astype("float32")
    if isinstance(y_true, Tensor):
        y_true = y_true.detach() if y_true.requires_grad else y_true
    else:
        y_true = Tensor(y_pred.backend_object.asarray(np.asarray(y_true)) if not
                        y_pred.backend_object.is_array(y_true) else y_true, y_pred.backend_object)
    return y_true, y_pred


def _same_shape(op: str, y_true: Tensor, y_pred: Tensor) -> Tensor:
    """y_true as floats shaped as y_pred; (N,) against (N, 1) is reshaped, as Keras does."""
    if y_true.shape != y_pred.shape and y_true.size == y_pred.size and \
            abs(y_true.ndim - y_pred.ndim) == 1 and 1 in (y_true.shape[-1:] + y_pred.shape[-1:]):
        y_true = y_true.reshape(y_pred.shape)
    if y_true.shape != y_pred.shape:
        raise ShapeError(f"{op}: y_true {shape_str(y_true.shape)} and y_pred {shape_str(y_pred.shape)} must have "
                         "the same shape" + ("; for class indices use sparse_categorical_crossentropy, or "
                                             "one-hot them with keras.utils.to_categorical"
                                             if y_true.ndim == y_pred.ndim - 1 else ""))
    return y_true.astype(y_pred.dtype) if y_true.dtype != y_pred.dtype else y_true


def _last_axis(op: str, axis: int, y_pred: Tensor) -> None:
    if axis not in (-1, y_pred.ndim - 1):
        raise ArgumentError(f"{op}: only axis=-1 (the classes last) is available, got axis={axis!r}")


def _checked(op: str, y_true: Any, y_pred: Any, from_logits: Any, label_smoothing: Any,
             axis: int) -> tuple[Tensor, Tensor, float]:
    """The arguments of a loss whose y_true is shaped as y_pred, checked: (y_true, y_pred, label_smoothing)."""
    checks.flag(op, "from_logits", from_logits)
    label_smoothing = checks.real(op, "label_smoothing", label_smoothing, 0.0, 1.0)
    y_true, y_pred = _pair(op, y_true, y_pred)
    _last_axis(op, axis, y_pred)
    return _same_shape(op, y_true, y_pred), y_pred, label_smoothing


def _log_probabilities(y_pred: Tensor, from_logits: bool) -> Tensor:
    """log p along the last axis: log_softmax of logits, or the log of probabilities normalised
    to sum 1 and clipped to [EPSILON, 1 - EPSILON], as Keras."""
    if from_logits:
        return F.log_softmax(y_pred, axis=-1)
    p = y_pred / y_pred.sum(axis=-1, keepdims=True)
    return F.minimum(F.maximum(p, EPSILON), 1 - EPSILON).log()


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0,
                             axis: int = -1) -> Tensor:
    """``-sum(y_true * log(y_pred))`` per sample, y_true one-hot (or class probabilities) shaped as y_pred."""
    y_true, y_pred, label_smoothing = _checked("categorical_crossentropy", y_true, y_pred, from_logits,
                                               label_smoothing, axis)
    if label_smoothing:
        y_true = y_true * (1 - label_smoothing) + label_smoothing / y_pred.shape[-1]
    return -(y_true * _log_probabilities(y_pred, from_logits)).sum(axis=-1)


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                                    ignore_class: int | None = None, axis: int = -1) -> Tensor:
    """``-log(y_pred[y_true])`` per sample, y_true class indices: (N,) or (N, 1) for y_pred (N, C)."""
    op = "sparse_categorical_crossentropy"
    checks.flag(op, "from_logits", from_logits)
    if ignore_class is not None:
        raise ArgumentError(f"{op}: ignore_class is not available in autograd_cnn.keras; leave it None")
    y_true, y_pred = _pair(op, y_true, y_pred)
    _last_axis(op, axis, y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1:] == (1,):
        y_true = y_true.reshape(y_true.shape[:-1])
    if y_true.shape != y_pred.shape[:-1]:
        raise ShapeError(f"{op}: y_pred {shape_str(y_pred.shape)} needs class indices shaped "
                         f"{shape_str(y_pred.shape[:-1])}, got y_true {shape_str(y_true.shape)}" + (
                             "; for one-hot labels use categorical_crossentropy" if y_true.shape == y_pred.shape
                             else ""))
    xp, t = y_pred.backend_object.xp, y_true.data
    classes = y_pred.shape[-1]
    if t.dtype.kind == "f" and not bool((t == xp.round(t)).all()):
        raise ArgumentTypeError(f"{op}: y_true must hold class indices (whole numbers), got fractions")
    if t.size and (int(t.min()) < 0 or int(t.max()) >= classes):
        raise ArgumentError(f"{op}: y_true holds class indices from {int(t.min())} to {int(t.max())}, "
                            f"but y_pred has {classes} classes (0 to {classes - 1})")
    one_hot = Tensor((t.astype(xp.int64)[..., None] == xp.arange(classes)).astype(y_pred.dtype),
                     y_pred.backend_object)
    return -(one_hot * _log_probabilities(y_pred, from_logits)).sum(axis=-1)


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0,
                        axis: int = -1) -> Tensor:
    """``-(t log p + (1 - t) log(1 - p))`` averaged over the last axis; y_true 0/1 shaped as y_pred."""
    y_true, y_pred, label_smoothing = _checked("binary_crossentropy", y_true, y_pred, from_logits,
                                               label_smoothing, axis)
    if label_smoothing:
        y_true = y_true * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        return F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none").mean(axis=-1)
    p = F.minimum(F.maximum(y_pred, EPSILON), 1 - EPSILON)
    return -(y_true * p.log() + (1 - y_true) * (1 - p).log()).mean(axis=-1)


def mean_squared_error(y_true: Any, y_pred: Any) -> Tensor:
    """``mean((y_true - y_pred)^2)`` over the last axis."""
    y_true, y_pred = _pair("mean_squared_error", y_true, y_pred)
    diff = y_pred - _same_shape("mean_squared_error", y_true, y_pred)
    return (diff * diff).mean(axis=-1)


# What compile reads: which of the Trainer's losses each one is.
categorical_crossentropy.keras_kind = "categorical"
sparse_categorical_crossentropy.keras_kind = "sparse"
binary_crossentropy.keras_kind = "binary"
mean_squared_error.keras_kind = "mse"
mse = MSE = mean_squared_error


class Loss:
    """Keras's base loss: ``loss(y_true, y_pred, sample_weight=None)`` is one number, the per-sample
    losses of ``call`` reduced by ``reduction`` ("sum_over_batch_size" or "mean": their mean;
    "sum"; "none" or None: the losses themselves)."""

    keras_kind = "callable"
    from_logits = False
    label_smoothing = 0.0

    def __init__(self, name: str | None = None, reduction: str | None = "sum_over_batch_size",
                 dtype: Any = None) -> None:
        cls = type(self).__name__
        checks.choice(cls, "reduction", reduction, _REDUCTIONS)
        if name is not None and not isinstance(name, str):
            raise ArgumentTypeError(f"{cls}: name must be a str or None, got {name!r}")
        self.name, self.reduction, self.dtype = name, reduction, dtype

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Tensor:
        losses = self.call(y_true, y_pred)
        if sample_weight is not None:
            weight = as_tensor(type(self).__name__, sample_weight, losses)
            losses = losses * weight.reshape(weight.shape + (1,) * (losses.ndim - weight.ndim))
        if self.reduction in ("sum_over_batch_size", "mean"):
            return losses.mean()
        if self.reduction == "sum":
            return losses.sum()
        return losses

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class _Crossentropy(Loss):
    """A loss with ``from_logits`` and ``label_smoothing``, calling ``fn``."""

    fn: Callable[..., Tensor]

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None) -> None:
        super().__init__(name or self.fn.__name__, reduction, dtype)
        cls = type(self).__name__
        self.from_logits = checks.flag(cls, "from_logits", from_logits)
        self.label_smoothing = checks.real(cls, "label_smoothing", label_smoothing, 0.0, 1.0)
        self.axis = axis

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        return type(self).fn(y_true, y_pred, self.from_logits, self.label_smoothing, self.axis)

    def get_config(self) -> dict:
        return {**super().get_config(), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
                "axis": self.axis}


class CategoricalCrossentropy(_Crossentropy):
    """The mean of ``categorical_crossentropy``: one-hot labels (``keras.utils.to_categorical``)."""

    keras_kind = "categorical"
    fn = staticmethod(categorical_crossentropy)


class BinaryCrossentropy(_Crossentropy):
    """The mean of ``binary_crossentropy``: 0/1 labels, one sigmoid output per label."""

    keras_kind = "binary"
    fn = staticmethod(binary_crossentropy)


class SparseCategoricalCrossentropy(Loss):
    """The mean of ``sparse_categorical_crossentropy``: integer class labels."""

    keras_kind = "sparse"

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None) -> None:
        super().__init__(name or "sparse_categorical_crossentropy", reduction, dtype)
        self.from_logits = checks.flag("SparseCategoricalCrossentropy", "from_logits", from_logits)
        if ignore_class is not None:
            raise ArgumentError("SparseCategoricalCrossentropy: ignore_class is not available in "
                                "autograd_cnn.keras; leave it None")
        self.ignore_class = None

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        return sparse_categorical_crossentropy(y_true, y_pred, self.from_logits)

    def get_config(self) -> dict:
        return {**super().get_config(), "from_logits": self.from_logits, "ignore_class": None}


class MeanSquaredError(Loss):
    """The mean of ``mean_squared_error``."""

    keras_kind = "mse"

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = "mean_squared_error",
                 dtype: Any = None) -> None:
        super().__init__(name, reduction, dtype)

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        return mean_squared_error(y_true, y_pred)


FUNCTIONS = {f.__name__: f for f in (categorical_crossentropy, sparse_categorical_crossentropy,
                                     binary_crossentropy, mean_squared_error)}
FUNCTIONS["mse"] = mean_squared_error
CLASSES = {c.__name__: c for c in (CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryCrossentropy,
                                   MeanSquaredError)}


def get(identifier: Any) -> Any:
    """A loss from a name (a function's, ``"categorical_crossentropy"``, ``"mse"``, or a class's,
    ``"CategoricalCrossentropy"``), a config dict ``{"class_name": ..., "config": {...}}``, or a
    callable (returned as is)."""
    if identifier is None or (callable(identifier) and not isinstance(identifier, type)):
        return identifier
    if isinstance(identifier, dict):
        name, config = identifier.get("class_name"), identifier.get("config") or {}
        if name in CLASSES and isinstance(config, dict):
            return CLASSES[name].from_config({k: v for k, v in config.items() if k != "fn"})
        if name in FUNCTIONS:
            return FUNCTIONS[name]
        raise ArgumentError(f"keras.losses.get: cannot make a loss of {identifier!r}; the known classes are "
                            f"{', '.join(CLASSES)}")
    if isinstance(identifier, str):
        if identifier in FUNCTIONS or identifier.lower() in FUNCTIONS:
            return FUNCTIONS[identifier.lower()]
        if identifier in CLASSES:
            return CLASSES[identifier]()
        raise ArgumentError(f"keras.losses: unknown loss {identifier!r}; the known ones are "
                            f"{', '.join([*FUNCTIONS, *CLASSES])}")
    raise ArgumentTypeError(f"keras.losses.get: cannot make a loss of {identifier!r}; give a name, a config "
                            "dict or a callable loss(y_true, y_pred)")


__all__ = ["BinaryCrossentropy", "CategoricalCrossentropy", "Loss", "MSE", "MeanSquaredError",
           "SparseCategoricalCrossentropy", "binary_crossentropy", "categorical_crossentropy", "get",
           "mean_squared_error", "mse", "sparse_categorical_crossentropy"]
