"""Keras's callbacks: `Callback`, `History`, `EarlyStopping`, `ModelCheckpoint`, with Keras's arguments.

They are ``nn.callbacks``' own (the one ``fit`` calls them), given Keras's names and the
arguments Keras has beyond them: EarlyStopping's ``baseline`` and ``start_from_epoch``,
ModelCheckpoint's ``filepath``, ``save_weights_only`` (a ``.weights.h5`` file) and
``initial_value_threshold``; a ``.keras`` file path saves the whole model as Keras does.
"""
from __future__ import annotations

from typing import Any

from .. import checks
from ..errors import ArgumentError
from ..nn import callbacks as _nn
from ..nn.callbacks import Callback, History
from . import saving


class EarlyStopping(_nn.EarlyStopping):
    """Stop training when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``baseline``: the value to beat (stop after ``patience`` epochs that do not beat it);
    ``start_from_epoch``: epochs to let pass before watching; ``restore_best_weights``: give the
    model back the weights of its best epoch when training ends.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        checks.integer("EarlyStopping", "patience", patience, minimum=0)
        checks.real("EarlyStopping", "min_delta", min_delta)
        super().__init__(monitor=monitor, patience=patience, restore_best_weights=restore_best_weights,
                         min_delta=min_delta, mode=mode, verbose=verbose)
        self.baseline = None if baseline is None else checks.real("EarlyStopping", "baseline", baseline)
        self.start_from_epoch = checks.integer("EarlyStopping", "start_from_epoch", start_from_epoch, minimum=0)

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        if self.baseline is not None:
            self.best = self.baseline

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch >= self.start_from_epoch:
            super().on_epoch_end(epoch, logs)


class ModelCheckpoint(_nn.ModelCheckpoint):
    """Save the model after each epoch (or only when ``monitor`` improves, ``save_best_only``), or
    every ``save_freq`` batches (counted across epochs, as Keras does; then the file name can use
    ``{epoch}`` and ``{batch}``).

    ``filepath`` may hold fields from the epoch and the logs (``"ckpt-{epoch:02d}-{val_loss:.3f}.keras"``);
    a ``.keras`` path gets Keras's model file (``keras.models.load_model`` reads it), any other
    this package's checkpoint; ``save_weights_only=True`` writes Keras's ``.weights.h5``.
    """

    def __init__(self, filepath: Any, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", save_freq: Any = "epoch",
                 initial_value_threshold: float | None = None) -> None:
        super().__init__(str(filepath), monitor=monitor, save_best_only=save_best_only, mode=mode, verbose=verbose)
        self.save_weights_only = checks.flag("ModelCheckpoint", "save_weights_only", save_weights_only)
        if self.save_weights_only and not self.path.endswith(".weights.h5"):
            raise ArgumentError(f"ModelCheckpoint: with save_weights_only=True the filepath must end in "
                                f".weights.h5, got {self.path!r}")
        if save_freq != "epoch":
            if isinstance(save_freq, str):
                raise ArgumentError(f"ModelCheckpoint: save_freq must be 'epoch' or a number of batches, "
                                    f"got {save_freq!r}")
            save_freq = checks.integer("ModelCheckpoint", "save_freq", save_freq, minimum=1)
            if self.save_best_only:
                raise ArgumentError("ModelCheckpoint: save_best_only compares the epoch's figures; with "
                                    f"save_freq={save_freq} (batches) use save_freq='epoch', or save every time")
        self.save_freq, self.epoch, self.batches_since_save = save_freq, 0, 0
        self.initial_value_threshold = None if initial_value_threshold is None else \
            checks.real("ModelCheckpoint", "initial_value_threshold", initial_value_threshold)
        if self.initial_value_threshold is not None:
            self.best = self.initial_value_threshold

    # --- save_freq: once an epoch (the parent's on_epoch_end), or every save_freq batches --------------
    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.save_freq == "epoch":
            super().on_train_begin(logs)
            return
        try:  # a batch's save knows the epoch and the batch, not the epoch's figures
            self.path.format(epoch=1, batch=1)
        except (KeyError, ValueError, IndexError, AttributeError, TypeError) as err:
            raise ArgumentError(f"ModelCheckpoint: with save_freq={self.save_freq} the file name {self.path!r} can "
                                f"use {{epoch}} and {{batch}} only ({type(err).__name__}: {err})") from None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.save_freq == "epoch":
            return
        self.batches_since_save += 1  # counted across epochs, as Keras counts them
        if self.batches_since_save >= self.save_freq:
            self.batches_since_save = 0
            path = self.path.format(epoch=self.epoch + 1, batch=batch + 1)
            self._save(path)
            self._said(f"Epoch {self.epoch + 1}, batch {batch + 1}: saved the model to {path}")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.save_freq == "epoch":
            super().on_epoch_end(epoch, logs)

    def _save(self, path: str) -> None:
        if self.save_weights_only:
            saving.save_weights(self.model, path)
        elif path.endswith(".keras"):
            saving.save_model(self.model, path)
        else:
            super()._save(path)


__all__ = ["Callback", "EarlyStopping", "History", "ModelCheckpoint"]
