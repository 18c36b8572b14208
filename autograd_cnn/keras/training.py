"""Keras's ``compile`` / ``fit`` / ``evaluate`` / ``predict`` / ``train_on_batch`` for Keras models.

Keras's names, argument order and defaults (``batch_size=32``, ``epochs=1``, ``verbose="auto"``,
``evaluate`` giving the loss or ``[loss, *metrics]``), handed over to the one ``Trainer``
(``nn/training.py``): there is no second training loop. A model without an input shape yet
(a ``Sequential`` to be built on its first batch) is built from ``x`` by ``fit`` and the
others before the optimizer is bound to its weights.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data import samples
from ..errors import ArgumentError, UsageError
from ..nn.feeding import batch_count, input_parts
from ..nn.training import Trainer

# Keras's arguments that change nothing here (how Keras compiles or runs its step).
_IGNORED = {"run_eagerly": None, "steps_per_execution": None, "jit_compile": None, "auto_scale_loss": None}


class KerasTraining:
    """Mixed into ``keras.Model``: Keras's training methods over ``nn``'s Trainer."""

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: list | None = None,
                loss_weights: Any = None, weighted_metrics: Any = None, from_logits: bool | None = None,
                **kwargs: Any) -> None:
        """Choose the optimizer, the loss and the metrics (names or objects of ``keras.optimizers``,
        ``keras.losses``, ``keras.metrics``)."""
        for key in kwargs:
            if key not in _IGNORED:
                raise ArgumentError(f"{self.name}.compile: unexpected argument {key!r}")
        if loss is None:
            raise ArgumentError(f"{self.name}.compile: give a loss, e.g. loss='sparse_categorical_crossentropy'")
        if loss_weights is not None or weighted_metrics is not None:
            raise ArgumentError(f"{self.name}.compile: loss_weights and weighted_metrics are not supported")
        from . import losses, optimizers

        if hasattr(optimizers, "get"):
            optimizer = optimizers.get(optimizer)
        if hasattr(losses, "get"):
            loss = losses.get(loss)
        object.__setattr__(self, "_compile_args", (optimizer, loss, metrics, from_logits))
        object.__setattr__(self, "_trainer", None)
        if self.built:
            self._compile_now()

    def _compile_now(self) -> None:
        optimizer, loss, metrics, from_logits = self._compile_args
        if not isinstance(optimizer, str) and callable(getattr(optimizer, "build", None)):
            optimizer.build(self.parameters())  # a keras.optimizers object is bound to the weights here
        trainer = Trainer(self)
        trainer.compile(optimizer, loss, metrics, from_logits)
        object.__setattr__(self, "_trainer", trainer)
        object.__setattr__(self, "optimizer", trainer.optimizer)

    def _ready(self, x: Any, what: str) -> Trainer:
        """The compiled Trainer, building the model from ``x`` first if it has no input shape yet."""
        if not self.built and x is not None and input_parts(what, self, x) is None:
            self._build_for((None,) + tuple(samples(what, "x", x).shape[1:]))
        if getattr(self, "_compile_args", None) is None:
            if what == "predict":
                return Trainer(self)
            raise UsageError(f"{self.name}.{what}: call compile(optimizer, loss, metrics) first")
        if self._trainer is None:
            self._compile_now()
        return self._trainer

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: Any = "auto", callbacks: list | None = None, validation_split: float = 0.0,
            validation_data: tuple | None = None, shuffle: bool = True, class_weight: Any = None,
            sample_weight: Any = None, initial_epoch: int = 0, steps_per_epoch: Any = None,
            validation_steps: Any = None, validation_batch_size: Any = None, validation_freq: int = 1) -> Any:
        """Train; returns the ``History`` (``history.history["loss"]``, ...). Keras's arguments and defaults."""
        _unsupported("fit", class_weight=class_weight, sample_weight=sample_weight, steps_per_epoch=steps_per_epoch,
                     validation_steps=validation_steps, validation_batch_size=validation_batch_size)
        if validation_freq != 1:
            raise ArgumentError(f"{self.name}.fit: validation_freq must be 1 (validation after every epoch)")
        trainer = self._ready(x, "fit")
        return trainer.fit(x, y, epochs, _batch(batch_size), validation_data, shuffle, _verbose(verbose),
                           callbacks, validation_split, initial_epoch)

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: Any = "auto",
                 sample_weight: Any = None, steps: Any = None, callbacks: Any = None, return_dict: bool = False) -> Any:
        """The loss, or ``[loss, *metrics]`` when compiled with metrics (a dict with ``return_dict``)."""
        _unsupported("evaluate", sample_weight=sample_weight, steps=steps, callbacks=callbacks)
        trainer = self._ready(x, "evaluate")
        return trainer.evaluate(x, y, _batch(batch_size), _verbose(verbose), "dict" if return_dict else "list")

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto", steps: Any = None,
                callbacks: Any = None) -> np.ndarray:
        """The outputs for ``x`` as a NumPy array (probabilities for a classifier)."""
        _unsupported("predict", steps=steps, callbacks=callbacks)
        return self._ready(x, "predict").predict(x, _batch(batch_size), _verbose(verbose))

    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, class_weight: Any = None,
                       return_dict: bool = False) -> Any:
        """One optimizer step on (x, y) as one batch: the batch's loss, or ``[loss, *metrics]``."""
        _unsupported("train_on_batch", sample_weight=sample_weight, class_weight=class_weight)
        result = self._ready(x, "train_on_batch").train_on_batch(x, y)
        if not return_dict:
            return result
        return dict(zip(["loss"] + list(self._trainer.metrics), result if isinstance(result, list) else [result]))

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False) -> Any:
        _unsupported("test_on_batch", sample_weight=sample_weight)
        return self.evaluate(x, y, batch_size=batch_count("test_on_batch", self, x), verbose=0,
                             return_dict=return_dict)

    def predict_on_batch(self, x: Any) -> np.ndarray:
        return self.predict(x, batch_size=batch_count("predict_on_batch", self, x), verbose=0)


def _batch(batch_size: int | None) -> int:
    return 32 if batch_size is None else batch_size


def _verbose(verbose: Any) -> Any:
    return 1 if verbose == "auto" else verbose


def _unsupported(op: str, **arguments: Any) -> None:
    for name, value in arguments.items():
        if value is not None:
            raise ArgumentError(f"{op}: {name} is not supported by autograd_cnn.keras; leave it None")
