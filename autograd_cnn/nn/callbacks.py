"""Keras-style callbacks for ``Module.fit``: History, EarlyStopping, ModelCheckpoint, GradientStats.

A callback subclasses ``Callback`` and overrides the hooks it needs; ``fit`` calls
them in order. ``logs`` holds the epoch's figures ("loss", "accuracy", "val_loss", ...).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

from ..errors import ArgumentError


class Callback:
    """Base class: every hook does nothing. ``self.model`` is the Module being trained."""

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

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

    def __init__(self, path: str, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", verbose: int = 0) -> None:
        super().__init__(monitor, mode)
        self.path, self.save_best_only, self.verbose = str(path), save_best_only, verbose

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        path = self.path.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            value = self._current(logs)
            if value is None or not self._improved(value):
                return
            self.best = value
        self.model.save(path)  # under several processes, only rank 0 writes
        if self.verbose:
            from ..distributed import world

            if world.is_main():  # the one process that wrote says so
                print(f"Epoch {epoch + 1}: saved the model to {path}")


class GradientStats(Callback):
    """Gradient health over training, every ``every`` steps and per layer (each module that holds
    parameters): the gradient norm ``grad_norm/<layer>``, the weight norm ``weight_norm/<layer>``,
    the size of the step against the weights ``update_ratio/<layer>`` (‖Δw‖ / ‖w‖, about 1e-3 is
    healthy), and per ReLU layer the fraction of dead units ``dead_relu/<layer>`` (zero for every
    example of the batch). Recorded into the History's ``steps``; ``visual.plot_training`` draws them.
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
        # nn.ReLU layers, known by name: the layers' file sits above this one and is not imported here.
        self._handles = [m.register_forward_hook(self._relu_hook(name or "relu"))
                         for name, m in self.model.named_modules() if type(m).__name__ == "ReLU"]
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
