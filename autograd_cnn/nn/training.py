"""The Keras-style workflow: a ``Trainer`` holds a model's optimizer, loss and metrics and runs
fit, evaluate and predict. ``Module.compile`` builds one; ``Module.fit`` and the rest hand over to it.

This file sits below ``module.py`` (which imports it): it knows a model only by what every
``nn.Module`` has (call it, ``parameters()``, ``children()``, ``switched_mode``, forward hooks).

Losses are read to the host at most a few times a second: between reads the running
sums stay on the backend, so a GPU is never made to wait after every step.
"""
from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .. import functional as F
from .. import optim
from ..autograd import no_grad
from ..backends import backend_of, get_backend
from ..errors import ShapeError, shape_str
from ..random import host_rng
from ..tensor import Tensor
from .callbacks import History

_READ_INTERVAL = 0.25  # seconds between host reads of the running loss (progress bar, NaN check)

_LOSSES = {"sparse_categorical_crossentropy": "sparse", "categorical_crossentropy": "categorical",
           "mse": "mse", "mean_squared_error": "mse"}
_OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd", "adadelta")


class Trainer:
    """The loop of one model: ``compile`` sets optimizer, loss and metrics; then fit, evaluate, predict.

    Uncompiled, it still predicts (the model's raw outputs); fit and evaluate say to compile.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.optimizer: Any = None
        self.loss: CompiledLoss | None = None
        self.metrics: list[str] = []

    def compile(self, optimizer: Any = "rmsprop", loss: Any = "sparse_categorical_crossentropy",
                metrics: list | None = None, from_logits: bool | None = None) -> None:
        """Check the choices, then keep them (all or none); see ``Module.compile``."""
        optimizer = _make_optimizer(optimizer, self.model)
        loss = CompiledLoss(loss, self.model, from_logits)
        for m in metrics or []:
            if m not in ("accuracy", "acc"):
                raise ValueError(f"compile: unknown metric {m!r}; the one metric is 'accuracy'")
        self.optimizer, self.loss, self.metrics = optimizer, loss, ["accuracy"] if metrics else []
        self.model.stop_training = False  # Keras's flag: callbacks set it to end fit early

    def _check_compiled(self, what: str) -> None:
        if self.optimizer is None:
            raise RuntimeError(f"{type(self.model).__name__}.{what}: call compile(optimizer, loss, metrics) first")

    # --- fit ----------------------------------------------------------------
    def fit(self, x: Any, y: Any, epochs: int = 5, batch_size: int = 128, validation_data: tuple | None = None,
            shuffle: bool = True, verbose: int = 1, callbacks: list | None = None) -> History:
        """Train and return the History; see ``Module.fit``."""
        self._check_compiled("fit")
        model = self.model
        data = self._data(x, y, batch_size, "fit")
        val = self._data(validation_data[0], validation_data[1], batch_size, "fit (validation_data)") \
            if validation_data is not None else None
        history = History()
        callbacks = [history] + list(callbacks or [])
        for cb in callbacks:
            cb.set_model(model)
        was_training = model.training
        model.stop_training = False
        model.train()
        for cb in callbacks:
            cb.on_train_begin({})
        try:
            with _DeferredInterrupt() as interrupt:
                for epoch in range(epochs):
                    for cb in callbacks:
                        cb.on_epoch_begin(epoch, {})
                    logs = self._fit_epoch(data, epoch, epochs, shuffle, verbose, callbacks, interrupt, val)
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
        for cb in callbacks:
            cb.on_train_end({})
        return history

    def _fit_epoch(self, data: _Data, epoch: int, epochs: int, shuffle: bool, verbose: int,
                   callbacks: list, interrupt: _DeferredInterrupt, val: _Data | None) -> dict:
        bar = _progress(data.steps, f"Epoch {epoch + 1}/{epochs}", verbose == 1)
        sums = _RunningSums(data.backend, "fit", epoch, self.metrics)
        start = time.perf_counter()
        try:
            with self.loss.watching():
                for step, (xb, yb) in enumerate(data.batches(shuffle)):
                    self.optimizer.zero_grad()
                    out = self.model(xb)
                    loss = self.loss(out, yb)
                    loss.backward()
                    self.optimizer.step()
                    sums.add(loss, out, yb, step)
                    for cb in callbacks:
                        cb.on_train_batch_end(step, {"batch": step, "size": len(xb)})
                    if sums.due():
                        logs = sums.read(step)
                        if bar is not None:
                            bar.set_postfix_str(_format(logs), refresh=False)
                    if bar is not None:
                        bar.update(1)
                    if interrupt.requested:
                        raise KeyboardInterrupt
            logs = sums.read(data.steps - 1)
            if val is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate_data(val).items()})
            if bar is not None:
                bar.set_postfix_str(_format(logs), refresh=True)
        finally:
            if bar is not None:
                bar.close()
        if verbose == 2:
            print(f"Epoch {epoch + 1}/{epochs} - {time.perf_counter() - start:.1f}s - {_format(logs, ' - ', ': ')}")
        return logs

    # --- evaluate and predict -------------------------------------------------
    def evaluate(self, x: Any, y: Any, batch_size: int = 128, verbose: int = 1) -> Any:
        """(loss, accuracy), or the loss alone; see ``Module.evaluate``."""
        self._check_compiled("evaluate")
        logs = self._evaluate_data(self._data(x, y, batch_size, "evaluate"), verbose == 1)
        if verbose == 2:
            print(_format(logs, " - ", ": "))
        return (logs["loss"], logs["accuracy"]) if "accuracy" in logs else logs["loss"]

    def _evaluate_data(self, data: _Data, bar: bool = False) -> dict:
        progress = _progress(data.steps, "Evaluate", bar)
        sums = _RunningSums(data.backend, "evaluate", None, self.metrics)
        with self.model.switched_mode(training=False), no_grad(), self.loss.watching():
            for step, (xb, yb) in enumerate(data.batches(False)):
                out = self.model(xb)
                sums.add(self.loss(out, yb), out, yb, step, check=False)
                if progress is not None:
                    progress.update(1)
        logs = sums.read(data.steps - 1, check=False)
        if progress is not None:
            progress.set_postfix_str(_format(logs), refresh=True)
            progress.close()
        return logs

    def predict(self, x: Any, batch_size: int = 128, verbose: int = 0) -> np.ndarray:
        """The outputs as NumPy, probabilities for classifiers; see ``Module.predict``."""
        data = self._data(x, None, batch_size, "predict")
        softmax = self.loss is not None and self.loss.reads == "logits"
        progress = _progress(data.steps, "Predict", verbose == 1)
        outs = []
        with self.model.switched_mode(training=False), no_grad():
            for xb, _ in data.batches(False):
                out = self.model(xb)
                outs.append((out.softmax(axis=1) if softmax else out).data)
                if progress is not None:
                    progress.update(1)
        if progress is not None:
            progress.close()
        return data.backend.to_host(data.backend.xp.concatenate(outs, axis=0))

    def _data(self, x: Any, y: Any, batch_size: int, op: str) -> _Data:
        sparse = self.loss is not None and self.loss.kind == "sparse"
        return _Data(self.model, x, y, batch_size, op, sparse)


class CompiledLoss:
    """The loss compile chose, holding its one decision: what it reads from the model.

    ``reads``: "output" (mse, a callable loss), "logits" (the outputs are logits),
    "probabilities" (the outputs are probabilities: a clipped log, as Keras), or
    "softmax_input": the model ends in ``Softmax`` and the loss takes that layer's input,
    which a forward hook keeps while ``watching()`` is on: as stable as cross-entropy on
    logits, and the layer itself is left as it is.
    """

    def __init__(self, loss: Any, model: Any, from_logits: bool | None) -> None:
        if callable(loss):
            self.kind = "callable"
        elif isinstance(loss, str) and loss.lower() in _LOSSES:
            self.kind = _LOSSES[loss.lower()]
        else:
            raise ValueError(f"compile: unknown loss {loss!r}; use one of {sorted(_LOSSES)} or a "
                             "callable loss(output, target)")
        self.fn = loss
        classifies = self.kind in ("sparse", "categorical")
        softmax = _final_softmax(model) if classifies else None
        if not classifies:
            self.reads = "output"
        elif softmax is not None and from_logits is not True:
            self.reads = "softmax_input"
        else:
            self.reads = "probabilities" if from_logits is False else "logits"
        self.softmax = softmax if self.reads == "softmax_input" else None  # the layer whose input it reads
        self._softmax_input: Tensor | None = None

    @contextmanager
    def watching(self) -> Iterator[None]:
        """While on, a forward hook keeps the final Softmax's input for the loss to read."""
        if self.softmax is None:
            yield
            return
        with self.softmax.register_forward_hook(self._keep_input):
            try:
                yield
            finally:
                self._softmax_input = None  # let go of the last batch's graph

    def _keep_input(self, module: Any, inputs: tuple, output: Any) -> None:
        self._softmax_input = inputs[0]

    def __call__(self, out: Tensor, target: Tensor) -> Tensor:
        """The loss of one batch, from the model's output (or the Softmax's input kept for it)."""
        if self.kind == "callable":
            return self.fn(out, target)
        if self.kind == "mse":
            return F.mse_loss(out, target)
        if self.reads == "softmax_input":
            out, self._softmax_input = self._softmax_input, None
            if out is None:
                raise RuntimeError(f"the loss compile chose reads the input of the model's last layer "
                                   f"{self.softmax!r}{self.softmax.where()}, but the forward pass did not call "
                                   "that layer; compile with from_logits=True if the outputs are logits")
        if self.reads == "probabilities":
            eps = 1e-7  # Keras's clip, so log(0) never appears
            log_p = F.minimum(F.maximum(out, eps), 1 - eps).log()
            if self.kind == "sparse":
                return F.nll_loss(log_p, target)
            return -(target * log_p).sum(axis=1).mean()
        return F.cross_entropy(out, target)


# --------------------------------------------------------------------------- helpers


def _make_optimizer(optimizer: Any, model: Any) -> Any:
    if not isinstance(optimizer, str):
        if not hasattr(optimizer, "step") or not hasattr(optimizer, "zero_grad"):
            raise TypeError(f"compile: optimizer must be a name {_OPTIMIZERS} or an optimizer object "
                            f"with step() and zero_grad(), got {type(optimizer).__name__}")
        return optimizer
    classes = {"rmsprop": optim.RMSprop, "adam": optim.Adam, "adamw": optim.AdamW,
               "adadelta": optim.Adadelta}
    name = optimizer.lower()
    if name == "sgd":
        return optim.SGD(model.parameters(), lr=0.01)  # Keras's default learning rate
    if name not in classes:
        raise ValueError(f"compile: unknown optimizer {optimizer!r}; use one of {_OPTIMIZERS} or an object")
    return classes[name](model.parameters())


def _final_softmax(model: Any) -> Any:
    """The model's last layer if it is a softmax (the last registered sub-module, recursively,
    when that layer says ``outputs_probabilities``: nn.Softmax does)."""
    module = model
    while True:
        children = list(module.children())
        if not children:
            break
        module = children[-1]
    return module if module.outputs_probabilities else None


class _Data:
    """x (and y) split into mini-batches that land on the model's backend and dtype."""

    def __init__(self, model: Any, x: Any, y: Any, batch_size: int, op: str, sparse: bool) -> None:
        param = next(iter(model.parameters()), None)
        self.backend = param._backend if param is not None else get_backend()
        self.dtype = param.dtype if param is not None else np.dtype("float32")
        self.x, self.x_backend = _source(x)
        self.y, self.y_backend = _source(y) if y is not None else (None, None)
        if batch_size < 1:
            raise ValueError(f"{op}: batch_size must be a positive integer, got {batch_size}")
        n = len(self.x)
        if self.y is not None and len(self.y) != n:
            raise ShapeError(f"{op}: x and y must hold the same number of samples, got x "
                             f"{shape_str(self.x.shape)} and y {shape_str(self.y.shape)}")
        if n == 0:
            raise ShapeError(f"{op}: x holds no samples")
        self.n, self.batch_size = n, batch_size
        self.steps = math.ceil(n / batch_size)
        self.sparse = sparse  # y holds class indices: they stay integers

    def batches(self, shuffle: bool) -> Iterator[tuple[Tensor, Tensor | None]]:
        order = host_rng().permutation(self.n) if shuffle else None
        for start in range(0, self.n, self.batch_size):
            index = slice(start, start + self.batch_size) if order is None else order[start:start + self.batch_size]
            yield self._take(self.x, self.x_backend, index, "x"), \
                self._take(self.y, self.y_backend, index, "y") if self.y is not None else None

    def _take(self, source: Any, backend: Any, index: Any, which: str) -> Tensor:
        if not isinstance(index, slice) and backend is not None and backend.name != "numpy":
            index = backend.asarray(index)
        batch = source[index]
        if backend is not None and backend is not self.backend:  # tensors on another backend
            batch = backend.to_host(batch)
        batch = self.backend.asarray(batch)
        if which == "x" or not self.sparse:
            if batch.dtype != self.dtype and (batch.dtype.kind in "fiub"):
                batch = batch.astype(self.dtype)
        elif batch.dtype.kind != "i":
            batch = batch.astype(self.backend.xp.int64)  # class indices for cross-entropy
        return Tensor(batch, self.backend)


def _source(data: Any) -> tuple[Any, Any]:
    """(array, its backend) for a Tensor; (NumPy array, None) for anything else."""
    if isinstance(data, Tensor):
        return data.data, data._backend
    if hasattr(data, "__cuda_array_interface__"):
        return data, backend_of(data)
    return np.asarray(data), None


class _RunningSums:
    """Sums of loss and correct predictions kept on the backend; read to the host on demand."""

    def __init__(self, backend: Any, op: str, epoch: int | None, metrics: list[str]) -> None:
        self.backend, self.op, self.epoch = backend, op, epoch
        self.loss_sum = self.correct = 0.0
        self.count = 0
        self.accuracy = "accuracy" in metrics
        # The CPU pays nothing to read a number: check every step there, so a NaN is
        # pinned to its exact step.
        self.every_step = backend.name == "numpy"
        self.last_read_time = time.perf_counter()
        self.last_read_step = -1

    def add(self, loss: Tensor, out: Tensor, yb: Tensor, step: int, check: bool = True) -> None:
        n = len(out)
        self.loss_sum = self.loss_sum + loss.data * n
        self.count += n
        if self.accuracy:
            self.correct = self.correct + _correct(out.data, yb.data, self.backend.xp)
        if check and self.every_step:
            self.read(step)

    def due(self) -> bool:
        return self.every_step or time.perf_counter() - self.last_read_time >= _READ_INTERVAL

    def read(self, step: int, check: bool = True) -> dict:
        """The averages so far as Python floats; raises if the loss turned NaN."""
        loss = float(self.loss_sum) / max(self.count, 1)
        if check and math.isnan(loss):
            first = self.last_read_step + 2
            where = f"step {step + 1}" if first >= step + 1 else f"between steps {first} and {step + 1}"
            raise FloatingPointError(
                f"{self.op}: the loss became NaN in epoch {self.epoch + 1}, {where}. Lower the "
                "learning rate, scale the inputs (e.g. to [0, 1]) and check them for NaN or inf")
        self.last_read_time, self.last_read_step = time.perf_counter(), step
        logs = {"loss": loss}
        if self.accuracy:
            logs["accuracy"] = float(self.correct) / max(self.count, 1)
        return logs


def _correct(out: Any, y: Any, xp: Any) -> Any:
    """How many predictions in the batch are right (a backend number, not read to the host)."""
    if out.ndim >= 2 and out.shape[1] > 1:
        predicted = out.argmax(axis=1)
        target = y.argmax(axis=1) if y.ndim == out.ndim else y
        return (predicted == target).sum()
    # one output per sample: a binary decision at 0.5
    return ((out.reshape(y.shape) > 0.5) == (y > 0.5)).sum()


def _format(logs: dict, sep: str = ", ", eq: str = "=") -> str:
    return sep.join(f"{k}{eq}{v:.4f}" for k, v in logs.items())


def _progress(total: int, desc: str, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, mininterval=_READ_INTERVAL)


class _DeferredInterrupt:
    """Ctrl-C during fit sets a flag that the loop reads after the current step; a second Ctrl-C
    interrupts at once. Outside the main thread signals cannot be caught, so it does nothing there."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Callable | None = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
