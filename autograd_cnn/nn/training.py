"""The Keras-style workflow: a ``Trainer`` holds a model's optimizer, loss and metrics and runs
fit, evaluate and predict. ``Module.compile`` builds one; ``Module.fit`` and the rest hand over to it.

This file sits below ``module.py`` (which imports it): it knows a model only by what every
``nn.Module`` has (call it, ``parameters()``, ``children()``, ``switched_mode``, forward hooks).
Beside it: ``compiling.py`` (what compile makes of its arguments: the optimizer, the metrics and
the loss), ``feeding.py`` (x and y in mini-batches, one array per input of a Keras model of
several) and ``progress.py`` (the bars, and Ctrl-C at the end of a step).

Losses are read to the host at most a few times a second: between reads the running
sums stay on the backend, so a GPU is never made to wait after every step.

Under several processes (``mpiexec``; ``autograd_cnn.distributed``) fit gives each process its
own part of every epoch, averages the gradients (``distributed.buckets``), loss and metrics,
and only rank 0 shows progress; evaluate and predict split the samples and gather the results.
The distributed modules are imported inside the functions that use them: they sit in this
layer too, and one of them (``DataParallel``) is an ``nn.Module``, which imports this file.
"""
from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from .. import checks
from ..autograd import enable_grad, no_grad
from ..errors import ArgumentError, ArgumentTypeError, UsageError
from ..metrics import Metric
from ..tensor import Tensor
from .callbacks import Callback, History
from .compiling import CompiledLoss, compiled_metrics, keras_loss, make_optimizer
from .feeding import Alone, Batches, batch_count, current_world, raw_pixels, split_off
from .guard import StepGuard
from .progress import REDRAW_INTERVAL, DeferredInterrupt, format_logs, progress_bar

_READ_INTERVAL = REDRAW_INTERVAL  # seconds between host reads of the running loss (the bar; a GPU's guard)
# With several processes on GPUs the reads are a collective: every process must read at the same
# steps, so they read every this many steps rather than by the clock.
_STEPS_BETWEEN_READS = 16


class Trainer:
    """The loop of one model: ``compile`` sets optimizer, loss and metrics; then fit, evaluate, predict.

    Uncompiled, it still predicts (the model's raw outputs); fit and evaluate say to compile.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.scores: list[Metric] = []  # what each metric computes, in the order of their names in metrics
        self.optimizer: Any = None
        self.loss: CompiledLoss | None = None
        self.metrics: list[str] = []
        self.warned_pixels = False  # the warning about unscaled pixels is given once

    def compile(self, optimizer: Any = "rmsprop", loss: Any = "sparse_categorical_crossentropy",
                metrics: list | None = None, from_logits: bool | None = None) -> None:
        """Check the choices, then keep them (all or none); see ``Module.compile``."""
        if from_logits is not None and not isinstance(from_logits, (bool, np.bool_)):
            raise ArgumentTypeError(f"compile: from_logits must be True, False or None, got {from_logits!r}")
        metrics = compiled_metrics(metrics)
        optimizer = make_optimizer(optimizer, self.model)
        loss, from_logits = keras_loss(loss, from_logits)
        loss = CompiledLoss(loss, self.model, from_logits)
        self.optimizer, self.loss, self.scores = optimizer, loss, metrics
        self.metrics = [m.name for m in metrics]
        self.model.stop_training = False  # Keras's flag: callbacks set it to end fit early

    def _check_compiled(self, what: str) -> None:
        if self.optimizer is None:
            raise UsageError(f"{type(self.model).__name__}.{what}: call compile(optimizer, loss, metrics) first")

    # --- fit ----------------------------------------------------------------
    def fit(self, x: Any, y: Any, epochs: int = 5, batch_size: int = 128, validation_data: tuple | None = None,
            shuffle: bool = True, verbose: int = 1, callbacks: list | None = None, validation_split: float = 0.0,
            initial_epoch: int = 0) -> History:
        """Train and return the History; see ``Module.fit``.

        As in Keras, ``validation_split`` holds out the last fraction of (x, y), taken before any
        shuffling, as validation data (``validation_data`` wins when both are given), and
        ``initial_epoch`` resumes the count: epochs ``initial_epoch`` to ``epochs - 1`` are run.
        """
        self._check_compiled("fit")
        epochs = checks.integer("fit", "epochs", epochs, minimum=1)
        initial_epoch = checks.integer("fit", "initial_epoch", initial_epoch, minimum=0)
        validation_split = checks.real("fit", "validation_split", validation_split, 0.0, 1.0, high_open=True)
        shuffle = checks.flag("fit", "shuffle", shuffle)
        verbose = _verbosity("fit", verbose)
        callbacks = _callbacks("fit", callbacks)
        model = self.model
        world = current_world()
        verbose = verbose if world.rank == 0 else 0  # one progress bar for the job: rank 0's
        if validation_split and validation_data is None:
            x, y, validation_data = split_off("fit", model, x, y, validation_split)
        data = self._data(x, y, batch_size, "fit", world, training=True)
        val = self._data(*_pair("fit", validation_data), batch_size, "fit (validation_data)", world) \
            if validation_data is not None else None
        history = History()
        callbacks = [history] + callbacks
        names = ["loss", *self.metrics]
        params = {"epochs": epochs, "steps": data.steps, "verbose": verbose,
                  "metrics": names + [f"val_{name}" for name in names] if val is not None else names}
        for cb in callbacks:
            cb.set_model(model)
            cb.set_params(params)
        was_training = model.training
        model.stop_training = False
        model.train()
        replicas = _replicate(model, world)
        guard = StepGuard(self.optimizer, model, data.backend, world.size)
        model._initial_epoch = None  # as Keras: a callback that restores a run sets where it goes on
        if verbose:
            print(_backend_line(data.backend))
        try:
            for cb in callbacks:  # inside: a callback that refuses to start leaves the model as it was
                cb.on_train_begin({})
            with DeferredInterrupt() as interrupt:
                for epoch in range(model._initial_epoch or initial_epoch, epochs):
                    for cb in callbacks:
                        cb.on_epoch_begin(epoch, {})
                    logs = self._fit_epoch(data, epoch, epochs, shuffle, verbose, callbacks, interrupt, val, guard)
                    for cb in callbacks:
                        cb.on_epoch_end(epoch, logs)
                    if model.stop_training:
                        break
        except KeyboardInterrupt:
            history.interrupted = True
            if verbose:
                print(f"Interrupted: stopped after {len(history.epoch)} complete epoch(s); "
                      "the model keeps the weights of its last step.")
        finally:
            model.train(was_training)
            if replicas is not None:
                replicas.remove()
        for cb in callbacks:
            cb.on_train_end({})
        return history

    def _fit_epoch(self, data: Batches, epoch: int, epochs: int, shuffle: bool, verbose: int,
                   callbacks: list, interrupt: DeferredInterrupt, val: Batches | None, guard: StepGuard) -> dict:
        bar = progress_bar(data.steps, f"Epoch {epoch + 1}/{epochs}", verbose == 1)
        sums = _RunningSums(data.backend, "fit", self.scores, data.world)
        start = time.perf_counter()
        try:
            for step, (xb, yb) in enumerate(data.batches(shuffle)):
                self.optimizer.zero_grad()
                out = self.model(xb)
                loss = self.loss(out, yb)
                guard.backward(loss)
                guard.step(loss, epoch, step)  # no update when the loss or a gradient is not finite
                sums.add(loss, out, yb)
                for cb in callbacks:
                    cb.on_train_batch_end(step, {"batch": step, "size": len(yb)})
                if sums.due(step):
                    guard.report()  # a GPU's skipped step is told here, where fit reads anyway
                    logs = sums.read(interrupted=interrupt.requested)
                    if bar is not None:
                        bar.set_postfix_str(format_logs(logs), refresh=False)
                if bar is not None:
                    bar.update(1)
                if sums.stop(interrupt.requested):
                    guard.report()
                    raise KeyboardInterrupt
            guard.report()
            logs = sums.read()
            if val is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate_data(val).items()})
            if bar is not None:
                bar.set_postfix_str(format_logs(logs), refresh=True)
        finally:
            if bar is not None:
                bar.close()
        if verbose == 2:
            print(f"Epoch {epoch + 1}/{epochs} - {time.perf_counter() - start:.1f}s - {format_logs(logs, ' - ', ': ')}")
        return logs

    # --- evaluate and predict -------------------------------------------------
    def evaluate(self, x: Any, y: Any, batch_size: int = 128, verbose: int = 1, result: str = "tuple") -> Any:
        """(loss, accuracy), (loss, *metrics) in compile's order, or the loss alone; see
        ``Module.evaluate``. ``result="list"`` gives Keras's result instead: the loss alone without
        metrics, else ``[loss, *metrics]`` in the logs' order; ``result="dict"`` the logs by name."""
        self._check_compiled("evaluate")
        verbose = _verbosity("evaluate", verbose)
        world = current_world()
        verbose = verbose if world.rank == 0 else 0
        logs = self._evaluate_data(self._data(x, y, batch_size, "evaluate", world), verbose == 1)
        if verbose == 2:
            print(format_logs(logs, " - ", ": "))
        if result == "dict":
            return logs
        if result == "list":
            return list(logs.values()) if len(logs) > 1 else logs["loss"]
        return (logs["loss"], *(logs[name] for name in self.metrics)) if self.metrics else logs["loss"]

    def train_on_batch(self, x: Any, y: Any) -> Any:
        """One optimizer step on one batch (x, y) as it is; the loss, or ``[loss, *metrics]`` of that
        batch (Keras's ``train_on_batch``). A loss or gradient that is not finite changes nothing and
        raises NonFiniteError, as in fit. Under several processes each passes its own part of the
        batch: as in ``fit``, the gradients are averaged (every process takes the same step from
        rank 0's weights) and the loss and metrics are those of the parts together."""
        self._check_compiled("train_on_batch")
        world = current_world()
        whole = Alone()  # each process's part is one batch: not shared out again
        data = self._data(x, y, batch_count("train_on_batch", self.model, x), "train_on_batch", whole)
        guard = StepGuard(self.optimizer, self.model, data.backend, world.size, "train_on_batch")
        sums = _RunningSums(data.backend, "train_on_batch", self.scores, world)
        replicas = _replicate(self.model, world)
        try:
            with self.model.switched_mode(training=True):
                for xb, yb in data.batches(False):
                    self.optimizer.zero_grad()
                    out = self.model(xb)
                    loss = self.loss(out, yb)
                    guard.backward(loss)
                    guard.step(loss, 0, 0)
                    sums.add(loss, out, yb)
        finally:
            if replicas is not None:
                replicas.remove()
        guard.report()
        logs = sums.read()
        return list(logs.values()) if len(logs) > 1 else logs["loss"]

    def _evaluate_data(self, data: Batches, bar: bool = False) -> dict:
        progress = progress_bar(data.steps, "Evaluate", bar)
        sums = _RunningSums(data.backend, "evaluate", self.scores, data.world)
        with self.model.switched_mode(training=False), no_grad():
            for xb, yb in data.batches(False):
                out = self._forward(xb)
                sums.add(self.loss(out, yb), out, yb)
                if progress is not None:
                    progress.update(1)
        logs = sums.read()
        if progress is not None:
            progress.set_postfix_str(format_logs(logs), refresh=True)
            progress.close()
        return logs

    def predict(self, x: Any, batch_size: int = 128, verbose: int = 0) -> np.ndarray:
        """The outputs as NumPy, probabilities for classifiers; see ``Module.predict``."""
        verbose = _verbosity("predict", verbose)
        world = current_world()
        data = self._data(x, None, batch_size, "predict", world)
        progress = progress_bar(data.steps, "Predict", verbose == 1 and world.rank == 0)
        outs = []
        with self.model.switched_mode(training=False), no_grad():
            for xb, _ in data.batches(False):
                out = self._forward(xb)
                softmax = self.loss is not None and self.loss.gives_logits()  # one softmax, never two
                outs.append((out.softmax(axis=1) if softmax else out).data)
                if progress is not None:
                    progress.update(1)
        if progress is not None:
            progress.close()
        return data.backend.to_host(data.joined(data.backend.xp.concatenate(outs, axis=0)))

    def _forward(self, xb: Tensor) -> Any:
        """The model's output for a batch of evaluate or predict. While the loss does not yet know
        whether the output is a softmax, the graph of this batch is recorded for it to read."""
        if self.loss is None or self.loss.checked:
            return self.model(xb)
        with enable_grad():
            out = self.model(xb)
        self.loss.decide(out)
        return out

    def _data(self, x: Any, y: Any, batch_size: int, op: str, world: Any, training: bool = False) -> Batches:
        sparse = self.loss is not None and self.loss.kind == "sparse"
        data = Batches(self.model, x, y, batch_size, op, sparse, world, training)
        if not self.warned_pixels and raw_pixels(data):
            self.warned_pixels = True
            warnings.warn(f"{op}: x holds integers from 0 to 255 ({data.x.dtype}, raw pixels?) and the model "
                          f"computes in {data.dtype}; scale them to [0, 1] first (x = x / 255), as the model's "
                          "initial weights expect, or training is slow and unstable", stacklevel=4)
        return data


def _backend_line(backend: Any) -> str:
    """fit's first line: the backend it trains on, and its device and threads where known."""
    info = backend.describe()
    details = [str(info[k]) for k in ("device",) if k in info]
    if "kernel_threads" in info:
        details.append(f"{info['kernel_threads']} kernel threads")
    return f"Training on the {backend.name} backend" + (f" ({', '.join(details)})" if details else "")


def _verbosity(op: str, verbose: Any) -> int:
    """0 silent, 1 progress bars, 2 a line per epoch; True and False mean 1 and 0, as in Keras."""
    if isinstance(verbose, (bool, np.bool_)):
        return int(verbose)
    if not isinstance(verbose, (int, np.integer)):
        raise ArgumentTypeError(f"{op}: verbose must be 0, 1 or 2 (or True, False), got {verbose!r}")
    if verbose not in (0, 1, 2):
        raise ArgumentError(f"{op}: verbose must be 0, 1 or 2 (or True, False), got {verbose!r}")
    return int(verbose)


def _callbacks(op: str, callbacks: Any) -> list:
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise ArgumentTypeError(f"{op}: callbacks must be a list of nn.Callback objects, got "
                                f"{type(callbacks).__name__}")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise ArgumentTypeError(f"{op}: callbacks[{i}] must be an nn.Callback (subclass it and override "
                                    f"the hooks you need), got {type(cb).__name__}")
    return list(callbacks)


def _pair(op: str, validation_data: Any) -> tuple:
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        what = f"a {type(validation_data).__name__} of {len(validation_data)}" \
            if isinstance(validation_data, (tuple, list)) else repr(validation_data)
        raise ArgumentTypeError(f"{op}: validation_data must be a pair (x, y), got {what}")
    return tuple(validation_data)


def _replicate(model: Any, world: Any) -> Any:
    """Under several processes: rank 0's weights on every process, and gradients averaged
    during backward until ``remove()``; None alone."""
    if world.size == 1:
        return None
    from ..distributed import buckets

    named = dict(model.named_parameters())
    named.update(model.named_buffers())
    return buckets.Replicas(named, list(model.parameters()), "fit")


class _RunningSums:
    """Sums of loss and predictions kept on the backend; read to the host on demand.

    Accuracy alone needs the count of right predictions; precision, recall and F1 need the
    confusion matrix of every sample so far (summed batch by batch with a bincount on the
    backend), so that they are the epoch's scores, not a mean of the batches' scores.
    Under several processes a read adds up every process's sums (one small all-reduce), so the
    figures, the NaN check and a Ctrl-C seen by any process are the same on all of them.
    """

    def __init__(self, backend: Any, op: str, metrics: list[Metric], world: Any) -> None:
        self.backend, self.op, self.world, self.metrics = backend, op, world, metrics
        self.loss_sum = self.correct = 0.0
        self.count = 0
        self.accuracy = any(m.kind == "accuracy" for m in metrics)
        self.confusion: Any = None  # K x K on the backend, once the first batch says K
        self.needs_confusion = any(m.kind != "accuracy" for m in metrics)
        self.one_output = False
        # The CPU pays nothing to read a number: read every step there (the progress bar, Ctrl-C).
        self.every_step = backend.name in StepGuard.HOST_CHECKED
        self.last_read_time = time.perf_counter()
        self.interrupted = False  # a Ctrl-C that some process had seen at the last read

    def add(self, loss: Tensor, out: Tensor, yb: Tensor) -> None:
        n = len(out)
        self.loss_sum = self.loss_sum + loss.data * n
        self.count += n
        if not self.metrics:
            return
        xp = self.backend.xp
        target, predicted, k = _classes(out.data, yb.data)
        if self.accuracy:
            self.correct = self.correct + (predicted == target).sum()
        if self.needs_confusion:
            self.one_output = out.ndim < 2 or out.shape[1] == 1
            counts = xp.bincount((target * k + predicted).reshape(-1).astype(xp.int64),
                                 minlength=k * k).reshape(k, k)
            self.confusion = counts if self.confusion is None else self.confusion + counts

    def due(self, step: int) -> bool:
        if self.every_step:
            return True
        if self.world.size > 1:  # the same steps on every process: reading is a collective
            return (step + 1) % _STEPS_BETWEEN_READS == 0
        return time.perf_counter() - self.last_read_time >= _READ_INTERVAL

    def stop(self, requested: bool) -> bool:
        """Whether Ctrl-C stops fit now: at once alone; together, once a read has told every process."""
        return requested if self.world.size == 1 else self.interrupted

    def read(self, interrupted: bool = False) -> dict:
        """The averages and scores so far as Python floats (a step that was not finite never gets
        here: fit's StepGuard stops before it)."""
        loss_sum, correct, count = float(self.loss_sum), float(self.correct), float(self.count)
        confusion = None if self.confusion is None else self.backend.to_host(self.confusion).astype(np.float64)
        if self.world.size > 1:
            totals = np.array([loss_sum, correct, count, float(interrupted)])
            if confusion is not None:
                totals = np.concatenate([totals, confusion.reshape(-1)])
            self.world.wait([self.world.start_all_reduce(totals, "sum", self.op, "the running loss and metrics")])
            loss_sum, correct, count = totals[:3]
            self.interrupted = bool(totals[3])
            if confusion is not None:
                confusion = totals[4:].reshape(confusion.shape)
        self.last_read_time = time.perf_counter()
        logs = {"loss": loss_sum / max(count, 1)}
        for m in self.metrics:
            if m.kind == "accuracy":
                logs[m.name] = correct / max(count, 1)
            elif confusion is not None:
                logs[m.name] = m.from_confusion(confusion, self.one_output)
        return logs


def _classes(out: Any, y: Any) -> tuple[Any, Any, int]:
    """(true classes, predicted classes, how many classes) of a batch, on the backend: the argmax
    of rows of scores (and of one-hot labels), or a decision at 0.5 for one output per sample."""
    if out.ndim >= 2 and out.shape[1] > 1:
        target = y.argmax(axis=1) if y.ndim == out.ndim else y
        return target, out.argmax(axis=1), out.shape[1]
    return y > 0.5, out.reshape(y.shape) > 0.5, 2


