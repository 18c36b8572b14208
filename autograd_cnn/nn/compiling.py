"""What ``compile`` makes of its arguments: the optimizer (a name or an object), the metrics, and
the loss (``CompiledLoss``), which reads the model's graph so that a softmax is never applied twice.
"""
from __future__ import annotations

from typing import Any

from .. import functional as F
from .. import optim
from ..errors import ArgumentError, ArgumentTypeError
from ..metrics import Metric, metric
from ..ops.activation import Softmax
from ..tensor import Tensor

_LOSSES = {"sparse_categorical_crossentropy": "sparse", "categorical_crossentropy": "categorical",
           "mse": "mse", "mean_squared_error": "mse"}


_OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd", "adadelta")


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
        node = softmax_node(out)
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
        node = softmax_node(out)
        if node is not None:
            return F.cross_entropy(node.inputs[0], target)  # the logits the softmax was taken of
        if (self.reads or self.guess) == "probabilities":
            eps = 1e-7  # Keras's clip, so log(0) never appears
            log_p = F.minimum(F.maximum(out, eps), 1 - eps).log()
            if self.kind == "sparse":
                return F.nll_loss(log_p, target)
            return -(target * log_p).sum(axis=1).mean()
        return F.cross_entropy(out, target)


def softmax_node(out: Any) -> Any:
    """The graph node that made ``out`` when it is a softmax over the classes (axis 1), else None."""
    node = getattr(out, "grad_fn", None)
    if node is None or node.fn is not Softmax or out.ndim < 2:
        return None
    return node if node.params.get("axis", -1) % out.ndim == 1 else None


# --------------------------------------------------------------------------- helpers


def make_optimizer(optimizer: Any, model: Any) -> Any:
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


def keras_loss(loss: Any, from_logits: bool | None) -> tuple[Any, bool | None]:
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


def compiled_metrics(metrics: Any) -> list[Metric]:
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
