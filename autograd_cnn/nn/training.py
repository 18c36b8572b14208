"""The Keras-style workflow: a ``Trainer`` holds a model's optimizer, loss and metrics and runs
fit, evaluate and predict. ``Module.compile`` builds one; ``Module.fit`` and the rest hand over to it.

This file sits below ``module.py`` (which imports it): it knows a model only by what every
``nn.Module`` has (call it, ``parameters()``, ``children()``, ``switched_mode``, forward hooks).

Losses are read to the host at most a few times a second: between reads the running
sums stay on the backend, so a GPU is never made to wait after every step.

Under several processes (``mpiexec``; ``autograd_cnn.distributed``) fit gives each process its
own part of every epoch, averages the gradients (``distributed.buckets``), loss and metrics,
and only rank 0 shows progress; evaluate and predict split the samples and gather the results.
The distributed modules are imported inside the functions that use them: they sit in this
layer too, and one of them (``DataParallel``) is an ``nn.Module``, which imports this file.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .. import checks, optim
from .. import functional as F
from ..autograd import enable_grad, no_grad
from ..backends import backend_of, get_backend
from ..data import finite, samples
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, UsageError, shape_str
from ..metrics import Metric, metric
from ..ops.activation import Softmax
from ..random import host_rng
from ..tensor import Tensor
from .callbacks import Callback, History
from .guard import StepGuard

_READ_INTERVAL = 0.25  # seconds between host reads of the running loss (progress bar; a GPU's guard)
# With several processes on GPUs the reads are a collective: every process must read at the same
# steps, so they read every this many steps rather than by the clock.
_STEPS_BETWEEN_READS = 16

_LOSSES = {"sparse_categorical_crossentropy": "sparse", "categorical_crossentropy": "categorical",
           "mse": "mse", "mean_squared_error": "mse"}
_OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd", "adadelta")


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
        metrics = _metrics(metrics)
        optimizer = _make_optimizer(optimizer, self.model)
        loss, from_logits = _keras_loss(loss, from_logits)
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
        world = _world()
        verbose = verbose if world.rank == 0 else 0  # one progress bar for the job: rank 0's
        if validation_split and validation_data is None:
            x, y, validation_data = _split_off("fit", model, x, y, validation_split)
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
            with _DeferredInterrupt() as interrupt:
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

    def _fit_epoch(self, data: _Data, epoch: int, epochs: int, shuffle: bool, verbose: int,
                   callbacks: list, interrupt: _DeferredInterrupt, val: _Data | None, guard: StepGuard) -> dict:
        bar = _progress(data.steps, f"Epoch {epoch + 1}/{epochs}", verbose == 1)
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
                        bar.set_postfix_str(_format(logs), refresh=False)
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
                bar.set_postfix_str(_format(logs), refresh=True)
        finally:
            if bar is not None:
                bar.close()
        if verbose == 2:
            print(f"Epoch {epoch + 1}/{epochs} - {time.perf_counter() - start:.1f}s - {_format(logs, ' - ', ': ')}")
        return logs

    # --- evaluate and predict -------------------------------------------------
    def evaluate(self, x: Any, y: Any, batch_size: int = 128, verbose: int = 1, result: str = "tuple") -> Any:
        """(loss, accuracy), (loss, *metrics) in compile's order, or the loss alone; see
        ``Module.evaluate``. ``result="list"`` gives Keras's result instead: the loss alone without
        metrics, else ``[loss, *metrics]`` in the logs' order; ``result="dict"`` the logs by name."""
        self._check_compiled("evaluate")
        verbose = _verbosity("evaluate", verbose)
        world = _world()
        verbose = verbose if world.rank == 0 else 0
        logs = self._evaluate_data(self._data(x, y, batch_size, "evaluate", world), verbose == 1)
        if verbose == 2:
            print(_format(logs, " - ", ": "))
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
        world = _world()
        whole = _Alone()  # each process's part is one batch: not shared out again
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

    def _evaluate_data(self, data: _Data, bar: bool = False) -> dict:
        progress = _progress(data.steps, "Evaluate", bar)
        sums = _RunningSums(data.backend, "evaluate", self.scores, data.world)
        with self.model.switched_mode(training=False), no_grad():
            for xb, yb in data.batches(False):
                out = self._forward(xb)
                sums.add(self.loss(out, yb), out, yb)
                if progress is not None:
                    progress.update(1)
        logs = sums.read()
        if progress is not None:
            progress.set_postfix_str(_format(logs), refresh=True)
            progress.close()
        return logs

    def predict(self, x: Any, batch_size: int = 128, verbose: int = 0) -> np.ndarray:
        """The outputs as NumPy, probabilities for classifiers; see ``Module.predict``."""
        verbose = _verbosity("predict", verbose)
        world = _world()
        data = self._data(x, None, batch_size, "predict", world)
        progress = _progress(data.steps, "Predict", verbose == 1 and world.rank == 0)
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

    def _data(self, x: Any, y: Any, batch_size: int, op: str, world: Any, training: bool = False) -> _Data:
        sparse = self.loss is not None and self.loss.kind == "sparse"
        data = _Data(self.model, x, y, batch_size, op, sparse, world, training)
        if not self.warned_pixels and _pixels(data):
            self.warned_pixels = True
            warnings.warn(f"{op}: x holds integers from 0 to 255 ({data.x.dtype}, raw pixels?) and the model "
                          f"computes in {data.dtype}; scale them to [0, 1] first (x = x / 255), as the model's "
                          "initial weights expect, or training is slow and unstable", stacklevel=4)
        return data


def _pixels(data: _Data) -> bool:
    """Whether x holds integers in 0..255 (beyond 0 and 1) for a model that computes in floats."""
    x = data.x
    if x.dtype.kind not in "ui" or data.dtype.kind != "f" or x.size == 0:
        return False
    return 0 <= float(x.min()) and 1 < float(x.max()) <= 255


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


class CompiledLoss:
    """The loss compile chose, and what it reads from the model's output.

    A softmax is never applied twice. Where the output already is a softmax over the classes,
    however it was written (``nn.Softmax``, ``F.softmax``, ``x.softmax(axis=1)``), the graph
    says so: the output's ``grad_fn`` node is a Softmax. The classification losses then take
    the cross-entropy of that node's input, the logits: as stable as on logits, and the model
    is left as it is. ``reads``:

    - "output": mse or a callable loss, the output as it is;
    - "logits": the output is logits (cross-entropy, and ``predict`` applies one softmax);
    - "probabilities": the output is a softmax, or ``from_logits=False`` says it holds
      probabilities; without a graph to read (evaluate, predict) a clipped log, as Keras;
    - None: not known until a forward pass records a graph (``decide``): the first training
      step, or the first batch of evaluate or predict, which the Trainer records for it.

    ``from_logits=True`` on an output that is a softmax is an ArgumentError saying so.
    """

    def __init__(self, loss: Any, model: Any, from_logits: bool | None) -> None:
        if callable(loss):
            self.kind = "callable"
        elif isinstance(loss, str) and loss.lower() in _LOSSES:
            self.kind = _LOSSES[loss.lower()]
        elif isinstance(loss, str):
            raise ArgumentError(f"compile: unknown loss {loss!r}; use one of {sorted(_LOSSES)} or a "
                                "callable loss(output, target)")
        else:
            raise ArgumentTypeError(f"compile: loss must be one of {sorted(_LOSSES)} or a callable "
                                    f"loss(output, target), got {loss!r}")
        self.fn = loss
        self.from_logits = from_logits
        classifies = self.kind in ("sparse", "categorical")
        self.reads: str | None = "output" if not classifies else "probabilities" if from_logits is False else None
        # True once a recorded output has been read: with from_logits=True it was checked not to be a softmax.
        self.checked = self.reads is not None
        # Where no graph is ever recorded (every parameter frozen): from_logits, else the last layer says.
        self.guess = "probabilities" if classifies and from_logits is not True and _final_softmax(model) is not None \
            else "logits"

    def decide(self, out: Any) -> None:
        """Read from ``out``'s graph whether the model's output is a softmax (once; nothing
        to read where no graph was recorded)."""
        if self.checked or not isinstance(out, Tensor) or out.grad_fn is None:
            return
        node = _softmax_node(out)
        if node is not None and self.from_logits is True:
            where = f" (in {node.scope})" if node.scope else ""
            raise ArgumentError(f"compile(from_logits=True): the model's output is a softmax over the classes, "
                                f"axis {node.params.get('axis')}{where}, so it holds probabilities, not logits. "
                                "Compile without from_logits (the loss then reads the softmax's input) or "
                                "leave the softmax out of the model")
        self.reads = "probabilities" if node is not None else "logits"
        self.checked = True

    def gives_logits(self) -> bool:
        """Whether the output is logits, so that ``predict`` applies a softmax (only then)."""
        return (self.reads or self.guess) == "logits"

    def __call__(self, out: Tensor, target: Tensor) -> Tensor:
        """The loss of one batch, from the model's output (or the logits under its softmax)."""
        if self.kind == "callable":
            return self.fn(out, target)
        if self.kind == "mse":
            return F.mse_loss(out, target)
        self.decide(out)
        node = _softmax_node(out)
        if node is not None:
            return F.cross_entropy(node.inputs[0], target)  # the logits the softmax was taken of
        if (self.reads or self.guess) == "probabilities":
            eps = 1e-7  # Keras's clip, so log(0) never appears
            log_p = F.minimum(F.maximum(out, eps), 1 - eps).log()
            if self.kind == "sparse":
                return F.nll_loss(log_p, target)
            return -(target * log_p).sum(axis=1).mean()
        return F.cross_entropy(out, target)


def _softmax_node(out: Any) -> Any:
    """The graph node that made ``out`` when it is a softmax over the classes (axis 1), else None."""
    node = getattr(out, "grad_fn", None)
    if node is None or node.fn is not Softmax or out.ndim < 2:
        return None
    return node if node.params.get("axis", -1) % out.ndim == 1 else None


# --------------------------------------------------------------------------- helpers


def _world() -> Any:
    """The job's processes (one under plain python; mpi4py is not loaded then)."""
    from ..distributed import world

    return world.current()


def _replicate(model: Any, world: Any) -> Any:
    """Under several processes: rank 0's weights on every process, and gradients averaged
    during backward until ``remove()``; None alone."""
    if world.size == 1:
        return None
    from ..distributed import buckets

    named = dict(model.named_parameters())
    named.update(model.named_buffers())
    return buckets.Replicas(named, list(model.parameters()), "fit")


def _split_off(op: str, model: Any, x: Any, y: Any, fraction: float) -> tuple[Any, Any, tuple]:
    """(x, y) without their last ``fraction``, and that fraction as validation data (Keras's
    validation_split: the split falls before shuffling). For a model of several inputs, each
    input's array is split so."""
    parts = [samples(op, name, part) for name, part in _named_parts(op, model, x)]
    y = samples(op, "y", y)
    n = len(y)
    keep = int(math.floor(n * (1.0 - fraction)))
    if keep == 0 or keep == n:
        raise ArgumentError(f"{op}: validation_split={fraction} of {n} samples leaves "
                            f"{'no training' if keep == 0 else 'no validation'} samples; use a fraction that "
                            "leaves both at least one")
    if input_parts(op, model, x) is None:
        return parts[0][:keep], y[:keep], (parts[0][keep:], y[keep:])
    return [p[:keep] for p in parts], y[:keep], ([p[keep:] for p in parts], y[keep:])


def input_parts(op: str, model: Any, x: Any) -> list | None:
    """For a model that takes several inputs (a Keras functional model with several ``Input``s),
    x's arrays in the model's input order: x a list or tuple of one array per input, or a dict by
    input name, as in Keras. None for a model of one input (x is then one array)."""
    names = getattr(model, "input_names", None)
    if not names or len(names) == 1:
        return None
    listing = ", ".join(names)
    if isinstance(x, dict):
        missing, unknown = [n for n in names if n not in x], [k for k in x if k not in names]
        if missing or unknown:
            raise ArgumentError(f"{op}: the model's inputs are {listing}; x "
                                + (f"lacks {', '.join(map(str, missing))}" if missing else "")
                                + (" and " if missing and unknown else "")
                                + (f"has no input named {', '.join(map(repr, unknown))}" if unknown else ""))
        return [x[n] for n in names]
    if isinstance(x, (list, tuple)) and len(x) == len(names):
        return list(x)
    got = f"a {type(x).__name__} of {len(x)}" if isinstance(x, (list, tuple)) else type(x).__name__
    raise ArgumentError(f"{op}: the model takes {len(names)} inputs ({listing}): pass x as a list of "
                        f"{len(names)} arrays in that order, or a dict by input name; got {got}")


def _named_parts(op: str, model: Any, x: Any) -> list[tuple[str, Any]]:
    """(name for messages, array) for each model input: ("x", x) alone for a model of one input."""
    parts = input_parts(op, model, x)
    return [("x", x)] if parts is None else list(zip(_input_labels(op, model, x), parts))


def _input_labels(op: str, model: Any, x: Any) -> list[str]:
    parts = input_parts(op, model, x)
    return ["x"] if parts is None else [f"x[{name!r}]" for name in model.input_names]


def batch_count(op: str, model: Any, x: Any) -> int:
    """How many samples x holds (its first input's, for a model of several inputs); at least 1."""
    parts = input_parts(op, model, x)
    return max(len(samples(op, "x", x if parts is None else parts[0])), 1)


class _Alone:
    """One process's view of the world: for data that is not shared out among the processes."""

    size, rank = 1, 0


def _make_optimizer(optimizer: Any, model: Any) -> Any:
    if not isinstance(optimizer, str):
        if not hasattr(optimizer, "step") or not hasattr(optimizer, "zero_grad"):
            raise ArgumentTypeError(f"compile: optimizer must be a name {_OPTIMIZERS} or an optimizer object "
                                    f"with step() and zero_grad(), got {type(optimizer).__name__}")
        if callable(getattr(optimizer, "build", None)):  # a keras.optimizers object: bound to the model here
            optimizer.build(model.parameters())
        return optimizer
    classes = {"rmsprop": optim.RMSprop, "adam": optim.Adam, "adamw": optim.AdamW,
               "adadelta": optim.Adadelta}
    name = optimizer.lower()
    if name == "sgd":
        return optim.SGD(model.parameters(), lr=0.01)  # Keras's default learning rate
    if name not in classes:
        raise ArgumentError(f"compile: unknown optimizer {optimizer!r}; use one of {_OPTIMIZERS} or an object")
    return classes[name](model.parameters())


def _keras_loss(loss: Any, from_logits: bool | None) -> tuple[Any, bool | None]:
    """A keras.losses function or object (it says its ``keras_kind``) in compile's own terms: a plain
    cross-entropy by its name and ``from_logits`` (so it reads the final softmax's input, as the named
    losses do), any other as a loss(output, target) that calls it in Keras's order; others as given."""
    kind = getattr(loss, "keras_kind", None)
    if kind is None:
        return loss, from_logits
    if from_logits is None:
        from_logits = bool(getattr(loss, "from_logits", False))  # Keras's default: probabilities
    if kind in ("sparse", "categorical") and not getattr(loss, "label_smoothing", 0.0):
        return _KERAS_CROSSENTROPY[kind], from_logits
    return _KerasOrder(loss), None


_KERAS_CROSSENTROPY = {"sparse": "sparse_categorical_crossentropy", "categorical": "categorical_crossentropy"}


class _KerasOrder:
    """A Keras loss as compile's callable loss(output, target): loss(y_true, y_pred), averaged."""

    def __init__(self, loss: Any) -> None:
        self.loss = loss

    def __call__(self, out: Tensor, target: Tensor) -> Tensor:
        return self.loss(target, out).mean()


def _final_softmax(model: Any) -> Any:
    """The model's last layer if it is a softmax (the last registered sub-module, recursively,
    when that layer says ``outputs_probabilities``: nn.Softmax does). Only a guess for when no
    graph tells (``CompiledLoss.guess``)."""
    module = model
    while True:
        children = list(module.children())
        if not children:
            break
        module = children[-1]
    return module if module.outputs_probabilities else None


class _Data:
    """x (and y) split into mini-batches that land on the model's backend and dtype.

    Under several processes each takes its part: for fit, every k-th sample of the epoch's
    common permutation (equal counts, so every process runs the same steps); for evaluate and
    predict, one contiguous share, which ``joined`` puts back together.
    """

    def __init__(self, model: Any, x: Any, y: Any, batch_size: int, op: str, sparse: bool, world: Any,
                 training: bool) -> None:
        param = next(iter(model.parameters()), None)
        self.backend = param.backend_object if param is not None else get_backend()
        self.dtype = param.dtype if param is not None else np.dtype("float32")
        batch_size = checks.integer(op, "batch_size", batch_size, minimum=1)
        # One source per model input: x itself, or for a model of several inputs each of x's arrays.
        self.several = input_parts(op, model, x) is not None
        self.xs = [_source(op, name, part) for name, part in _named_parts(op, model, x)]
        self.x, self.x_backend = self.xs[0]
        self.y, self.y_backend = _source(op, "y", y, sparse) if y is not None else (None, None)
        n = len(self.x)
        for name, (part, _) in zip(_input_labels(op, model, x), self.xs):
            if len(part) != n:
                raise ShapeError(f"{op}: every input must hold the same number of samples, got "
                                 f"{shape_str(self.x.shape)} for the first and {shape_str(part.shape)} for {name}")
        if self.y is not None and len(self.y) != n:
            raise ShapeError(f"{op}: x and y must hold the same number of samples, got x "
                             f"{shape_str(self.x.shape)} and y {shape_str(self.y.shape)}")
        if n == 0:
            raise ShapeError(f"{op}: x holds no samples")
        self.n, self.batch_size, self.world, self.op, self.training = n, batch_size, world, op, training
        if training:
            self.start, self.rows = 0, math.ceil(n / world.size)
        else:
            from ..distributed import sharding

            self.start, stop = sharding.contiguous_part(n, world)
            self.rows = stop - self.start
        self.steps = math.ceil(self.rows / batch_size)
        self.sparse = sparse  # y holds class indices: they stay integers

    def batches(self, shuffle: bool) -> Iterator[tuple[Tensor, Tensor | None]]:
        order = self._order(shuffle)
        for start in range(0, self.rows, self.batch_size):
            index = slice(self.start + start, self.start + min(start + self.batch_size, self.rows)) \
                if order is None else order[start:start + self.batch_size]
            xb = [self._take(part, backend, index, "x") for part, backend in self.xs]
            yield xb if self.several else xb[0], \
                self._take(self.y, self.y_backend, index, "y") if self.y is not None else None

    def _order(self, shuffle: bool) -> np.ndarray | None:
        """The sample indices this process takes, in order; None for its contiguous share as it lies."""
        if self.world.size == 1 or not self.training:
            return host_rng().permutation(self.n) if shuffle else None
        from ..distributed import sharding

        order = sharding.common_permutation(self.n, host_rng(), self.world) if shuffle else np.arange(self.n)
        return sharding.strided_part(order, self.world)

    def joined(self, part: Any) -> Any:
        """Every process's share of a result (predict's outputs), back in the order of the samples."""
        if self.world.size == 1:
            return part
        from ..distributed import sharding

        return sharding.gather_parts(part, self.n, self.world, self.op)

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


def _source(op: str, name: str, data: Any, labels: bool = False) -> tuple[Any, Any]:
    """(array, its backend) for a tensor or a CuPy array; (NumPy array, None) for anything else.
    Checked first: numbers with a first axis of samples, finite, and class indices for ``labels``."""
    array = samples(op, name, data, labels)
    if name.startswith("x") and array.ndim < 2:  # a layer would take (N,) as one sample of N numbers
        raise ArgumentError(f"{op}: x must have a first axis of samples and at least one more, got shape "
                            f"{shape_str(array.shape)}; for one number per sample use x.reshape(-1, 1)")
    finite(op, name, array)
    return array, None if isinstance(array, np.ndarray) else backend_of(array)


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


def _metrics(metrics: Any) -> list[Metric]:
    """compile's metrics as Metric objects: names ("accuracy", "f1", ...) or keras.metrics objects."""
    if metrics is None:
        return []
    if not isinstance(metrics, (list, tuple)):
        raise ArgumentTypeError(f"compile: metrics must be a list such as ['accuracy', 'f1'], got {metrics!r}")
    parsed = [metric("compile", m) for m in metrics]
    names = [m.name for m in parsed]
    for name in names:
        if names.count(name) > 1 or name == "loss":
            raise ArgumentError(f"compile: two metrics would be logged as {name!r}; give each a name of its "
                                f"own (metrics={names})")
    return parsed


def _format(logs: dict, sep: str = ", ", eq: str = "=") -> str:
    return sep.join(f"{k}{eq}{v:.4f}" for k, v in logs.items())


def _progress(total: int, desc: str, show: bool) -> Any:
    """tqdm's bar on a terminal or in a notebook; one line at the end elsewhere (a log file, a pipe),
    where each redraw of the bar would be a line of its own."""
    if not show:
        return None
    if not (sys.stderr.isatty() or _in_notebook()):
        return _LineAtTheEnd(total, desc)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, mininterval=_READ_INTERVAL)


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"  # Jupyter's kernel: tqdm draws a widget


class _LineAtTheEnd:
    """The part of tqdm's interface fit uses, writing one line to stderr when closed:
    ``Epoch 1/5: 32/32 steps, 1.2s, loss=0.6931, accuracy=0.7500``."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.n, self.postfix = total, desc, 0, ""
        self.start = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def close(self) -> None:
        seconds = time.perf_counter() - self.start
        tail = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n}/{self.total} steps, {seconds:.1f}s{tail}", file=sys.stderr, flush=True)


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
