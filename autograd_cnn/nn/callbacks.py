"""Keras-style callbacks for ``Module.fit``: History, EarlyStopping, ModelCheckpoint, BackupAndRestore,
GradientStats.

A callback subclasses ``Callback`` and overrides the hooks it needs; ``fit`` calls
them in order. ``logs`` holds the epoch's figures ("loss", "accuracy", "val_loss", ...).
"""
from __future__ import annotations

import math
import os
import warnings
from typing import Any

from ..errors import ArgumentError, ArgumentTypeError


class Callback:
    """Base class: every hook does nothing. ``self.model`` is the Module being trained;
    ``self.params`` what fit was asked (as Keras): "epochs", "steps" (per epoch), "verbose", and
    "metrics", the names of the figures each epoch's ``logs`` will hold ("loss", "val_loss", ...)."""

    model: Any = None
    params: dict = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """After each optimizer step; ``logs`` has "batch" and "size" (no loss: reading it would sync the GPU)."""


class History(Callback):
    """What ``fit`` returns: ``history[name]`` is the list of per-epoch values; ``steps[name]`` the
    values recorded every few steps (``GradientStats``), at the steps listed in ``steps["step"]``.
    As in Keras, ``model.history`` is the History of the model's latest ``fit``."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.steps: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.interrupted = False  # True when Ctrl-C stopped fit early

    def set_model(self, model: Any) -> None:
        self.model = model
        object.__setattr__(model, "history", self)  # a plain attribute, whatever the model's class

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.append(epoch)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class _Monitor(Callback):
    """Shared by callbacks that watch one logged figure for improvement."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0) -> None:
        if mode not in ("auto", "min", "max"):
            raise ArgumentError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":  # accuracies grow, losses shrink
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.best = math.inf if mode == "min" else -math.inf
        self._warned = False

    def _current(self, logs: dict | None) -> float | None:
        value = (logs or {}).get(self.monitor)
        if value is None and not self._warned:
            self._warned = True
            warnings.warn(f"{type(self).__name__}: {self.monitor!r} is not among the logged figures "
                          f"{sorted(logs or {})}; pass validation_data to fit for 'val_' figures",
                          stacklevel=3)
        return value

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    With ``restore_best_weights=True`` the model gets back the weights of its best
    epoch when training ends.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, restore_best_weights: bool = False,
                 min_delta: float = 0.0, mode: str = "auto", verbose: int = 0) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience, self.restore_best_weights, self.verbose = patience, restore_best_weights, verbose
        self.best_weights: dict | None = None
        self.best_epoch = self.stopped_epoch = None
        self.wait = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.wait, self.best_weights, self.stopped_epoch = 0, None, None
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = self._current(logs)
        if value is None:
            return
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: t.backend_object.xp.copy(t.data) for k, t in self.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping ({self.monitor} best {self.best:.4f} "
                      f"at epoch {self.best_epoch + 1})")

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model's state dict after each epoch (or only when ``monitor`` improves).

    ``path`` may hold fields filled from the epoch number and logs, as in Keras:
    ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``.
    """

    def _save(self, path: str) -> None:
        """Write the checkpoint (keras.callbacks.ModelCheckpoint writes Keras's files instead)."""
        self.model.save(path)  # under several processes, only rank 0 writes

    def __init__(self, path: str, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", verbose: int = 0) -> None:
        super().__init__(monitor, mode)
        self.path, self.save_best_only, self.verbose = str(path), save_best_only, verbose

    def on_train_begin(self, logs: dict | None = None) -> None:
        """The file name's fields checked against the figures fit will log, before the first epoch
        (not as a KeyError after it)."""
        names = self.params.get("metrics")
        if names is None:
            return
        try:
            self.path.format(epoch=1, **{name: 0.5 for name in names})
        except KeyError as err:
            hint = "; pass validation_data to fit for the 'val_' figures" \
                if str(err.args[0]).startswith("val_") else ""
            raise ArgumentError(f"ModelCheckpoint: the file name {self.path!r} uses {{{err.args[0]}}}, which this "
                                f"fit does not log; it logs epoch, {', '.join(names)}{hint}") from None
        except (ValueError, IndexError, AttributeError, TypeError) as err:
            raise ArgumentError(f"ModelCheckpoint: the file name {self.path!r} is not a template fit can fill "
                                f"({err}); write fields as {{epoch:02d}} or {{val_loss:.3f}}") from None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        path = self.path.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            value = self._current(logs)
            if value is None or not self._improved(value):
                return
            self.best = value
        self._save(path)
        self._said(f"Epoch {epoch + 1}: saved the model to {path}")

    def _said(self, line: str) -> None:
        """Print ``line`` when verbose, from the one process that wrote."""
        if self.verbose:
            from ..distributed import world

            if world.is_main():
                print(line)


class BackupAndRestore(Callback):
    """Resume a run that was killed or interrupted where it stopped, as Keras's ``BackupAndRestore``.

    At the end of every epoch it writes the model's weights, the optimizer's state, the epoch,
    the random generators' state (shuffling, dropout) and the History to one file in
    ``backup_dir``, atomically: a kill while it writes leaves the previous backup whole. When
    fit starts and a backup is there, it restores all of it and fit goes on after the last
    finished epoch, so the same script run again ends with the weights an uninterrupted run
    would have. ``delete_checkpoint``: remove the backup when training ends (not when Ctrl-C
    stopped it, nor after an error). ``double_checkpoint``: keep the backup before the latest
    too, read when the latest cannot be. Under ``mpiexec`` rank 0 writes and every process restores.
    ``save_freq`` is "epoch": a run resumes at the start of an epoch.
    """

    FILE = "backup.npz"
    PREVIOUS = "backup.previous.npz"

    def __init__(self, backup_dir: str | os.PathLike, save_freq: str = "epoch", double_checkpoint: bool = False,
                 delete_checkpoint: bool = True) -> None:
        if not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
            raise ArgumentTypeError(f"BackupAndRestore: backup_dir must be a folder's path, got {backup_dir!r}")
        if save_freq != "epoch":
            raise ArgumentError(f"BackupAndRestore: save_freq must be 'epoch', got {save_freq!r}: a resumed run "
                                "starts at the beginning of an epoch, so the backup is made at each epoch's end")
        for name, flag in (("double_checkpoint", double_checkpoint), ("delete_checkpoint", delete_checkpoint)):
            if not isinstance(flag, bool):
                raise ArgumentTypeError(f"BackupAndRestore: {name} must be True or False, got {flag!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq, self.double_checkpoint, self.delete_checkpoint = save_freq, double_checkpoint, delete_checkpoint
        self.path = os.path.join(self.backup_dir, self.FILE)
        self.previous = os.path.join(self.backup_dir, self.PREVIOUS)
        self.restored_epoch: int | None = None  # the epochs the last restore found finished

    def on_train_begin(self, logs: dict | None = None) -> None:
        from ..serialization import CheckpointError

        self.restored_epoch = None
        state = self._load()
        if state is None:
            return
        try:
            problem = _backup_problem(state)
            if problem is None:
                self._restore(state)
        except CheckpointError as err:  # the weights or the optimizer's state do not fit this model
            raise CheckpointError(f"BackupAndRestore: the backup in {self.backup_dir} is not of this model and "
                                  f"optimizer ({err}); give another backup_dir, or delete the folder to start "
                                  "the run over") from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            problem = f"{type(err).__name__}: {err}"
        if problem is not None:
            raise CheckpointError(f"BackupAndRestore: {self.path} is not a backup of this callback, or is damaged "
                                  f"({problem}); delete the folder to start the run over")
        self.model._initial_epoch = self.restored_epoch  # Keras's word to fit: start there
        if self.params.get("verbose"):
            from ..distributed import world

            if world.is_main():
                print(f"BackupAndRestore: restored {self.path}; going on after epoch {self.restored_epoch}")

    def _restore(self, state: dict) -> None:
        """Everything the backup holds, back in place (``_backup_problem`` has checked its shape)."""
        from ..random import set_state

        saved, epoch = state["history"], state["epoch"]
        self.model.load_state_dict(state["model"])
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        set_state(state["random"])
        history = getattr(self.model, "history", None)
        if isinstance(history, History):
            history.history = {k: list(v) for k, v in saved["history"].items()}
            history.steps = {k: list(v) for k, v in saved["steps"].items()}
            history.epoch = list(saved["epoch"])
        self.restored_epoch = epoch

    def _load(self) -> dict | None:
        """The latest backup (or, with double_checkpoint, the one before when the latest cannot be
        read); None when there is none."""
        from ..serialization import CheckpointError, load

        problem = None
        for path in (self.path, self.previous) if self.double_checkpoint else (self.path,):
            if not os.path.exists(path):
                continue
            try:
                return load(path)
            except CheckpointError as err:
                problem = err
        if problem is not None:
            raise CheckpointError(f"BackupAndRestore: the backup in {self.backup_dir} cannot be read ({problem}); "
                                  "delete the folder to start the run over") from None
        return None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from ..distributed import world
        from ..random import get_state
        from ..serialization import save

        if not world.is_main():  # data-parallel processes hold the same state: rank 0 writes it
            return
        history = getattr(self.model, "history", None)
        optimizer = getattr(self.model, "optimizer", None)
        state = {"model": self.model.state_dict(),
                 "optimizer": optimizer.state_dict() if optimizer is not None else None,
                 "epoch": epoch + 1, "random": get_state(),
                 "history": {"history": history.history, "steps": history.steps, "epoch": history.epoch}
                 if isinstance(history, History) else {"history": {}, "steps": {}, "epoch": []}}
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self.path):
            os.replace(self.path, self.previous)
        save(state, self.path)  # atomic: the file is whole, old or new

    def on_train_end(self, logs: dict | None = None) -> None:
        from ..distributed import world

        history = getattr(self.model, "history", None)
        if not self.delete_checkpoint or getattr(history, "interrupted", False) or not world.is_main():
            return
        for path in (self.path, self.previous):
            if os.path.exists(path):
                os.unlink(path)
        try:
            os.rmdir(self.backup_dir)  # only when nothing else is in it
        except OSError:
            pass


def _backup_problem(state: Any) -> str | None:
    """What is not as BackupAndRestore writes it in a loaded backup, or None (before anything changes)."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not the dict BackupAndRestore writes"
    saved, epoch = state["history"], state["epoch"]
    if not (isinstance(epoch, int) and epoch >= 0 and isinstance(state["random"], dict)
            and all(isinstance(saved[k], t) for k, t in (("history", dict), ("steps", dict), ("epoch", list)))):
        return "its epoch, random state or History is not what BackupAndRestore writes"
    return None


class GradientStats(Callback):
    """Gradient health over training, every ``every`` steps and per layer (each module that holds
    parameters): the gradient norm ``grad_norm/<layer>``, the weight norm ``weight_norm/<layer>``,
    the size of the step against the weights ``update_ratio/<layer>`` (‖Δw‖ / ‖w‖, about 1e-3 is
    healthy), and per ReLU layer (or layer with ``activation="relu"``) the fraction of dead units
    ``dead_relu/<layer>`` (zero for every example of the batch). Recorded into the History's
    ``steps``; ``visual.plot_training`` draws them.
    """

    def __init__(self, every: int = 10) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ArgumentError(f"GradientStats: every must be a positive number of steps, got {every!r}")
        self.every = every
        self.steps: dict[str, list[float]] = {}
        self._handles: list = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        history = getattr(self.model, "history", None)
        self.steps = history.steps if isinstance(history, History) else {}
        self.step = 0
        self.layers = [(name or type(m).__name__, list(m.parameters(recurse=False)))
                       for name, m in self.model.named_modules() if any(True for _ in m.parameters(recurse=False))]
        self.dead: dict[str, float] = {}
        # ReLU layers (nn.ReLU, keras.layers.ReLU), known by name: the layers' files sit above this one
        # and are not imported here; and layers whose output is a ReLU's (Conv2D(activation="relu")).
        self._handles = [m.register_forward_hook(self._relu_hook(name or "relu"))
                         for name, m in self.model.named_modules()
                         if type(m).__name__ == "ReLU" or getattr(m, "ends_in_relu", False)]
        self.before = self._weights()  # step 0 is recorded: keep the weights it starts from

    def _relu_hook(self, name: str) -> Any:
        def hook(module: Any, inputs: tuple, output: Any) -> None:
            # Only a training forward of a step that is recorded (not validation, not the others).
            if module.training and self.step % self.every == 0 and output.ndim > 1:
                zero = output.data == 0
                self.dead[name] = float(zero.all(axis=0).mean())
        return hook

    def _weights(self) -> list[list[Any]]:
        return [[p.data.copy() for p in params] for _, params in self.layers]

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.step % self.every == 0:
            self._record()
        self.step += 1
        if self.step % self.every == 0:
            self.before = self._weights()  # the weights the next recorded step starts from

    def _record(self) -> None:
        row: dict[str, float] = {"step": float(self.step)}
        for (name, params), before in zip(self.layers, self.before):
            xp = params[0].backend_object.xp
            grads = [p.grad.data for p in params if p.grad is not None]
            row[f"grad_norm/{name}"] = _norm(xp, grads) if grads else math.nan
            weight = _norm(xp, [p.data for p in params])
            row[f"weight_norm/{name}"] = weight
            update = _norm(xp, [p.data - b for p, b in zip(params, before)])
            row[f"update_ratio/{name}"] = update / weight if weight > 0 else math.nan
        for name, fraction in self.dead.items():
            row[f"dead_relu/{name}"] = fraction
        for key, value in row.items():
            self.steps.setdefault(key, []).append(value)

    def on_train_end(self, logs: dict | None = None) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _norm(xp: Any, arrays: list[Any]) -> float:
    """The Euclidean norm of several arrays taken as one vector."""
    return math.sqrt(sum(float((a.astype(xp.float64) ** 2).sum()) for a in arrays))
