"""Module and Parameter: the containers that hold a model's weights, buffers and sub-layers.

Each module knows its dotted ``_path`` in the root model ("" for the root, "0",
"features.3" below it). ``__call__`` runs ``forward`` inside ``autograd.scope(path)`` so
every graph node records the layer that made it, and each Parameter is named after
its path ("features.0.weight") unless the user named it. Forward hooks, as PyTorch's,
let other code watch or change what a module takes and returns without touching it.
"""
from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np

from .. import autograd
from ..backends import ALIASES, Backend, get_backend
from ..errors import ArgumentTypeError, ShapeError, shape_str
from ..hooks import RemovableHandle
from ..tensor import Tensor
from .summary import summary
from .training import Trainer


class Parameter(Tensor):
    """A Tensor that requires grad and that a Module registers as one of its weights."""

    __slots__ = ("_auto_name",)

    def __init__(self, data: Any, requires_grad: bool = True, name: str | None = None) -> None:
        if isinstance(data, Tensor):
            array, backend = data.data, data.backend_object
        else:
            backend = get_backend()
            array = backend.asarray(data)
        if requires_grad and array.dtype.kind != "f":
            raise ArgumentTypeError(f"Parameter: only floating-point data can require grad, got {array.dtype}")
        super().__init__(array, backend, requires_grad=requires_grad, name=name)
        self._auto_name = None  # the path-derived name last given, so a user's own name is kept

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


# How deep in nested Module calls we are: a call at depth 0 is a root call, which
# refreshes the paths and parameter names of the whole model.
_call_depth = 0


class Module:
    """Base class of every layer and model: subclass it, set layers in __init__, write forward."""

    training: bool
    # True for a layer whose output is a softmax of its input (nn.Softmax): as a model's last
    # layer, the classification losses of compile read that input instead (more stable).
    outputs_probabilities: ClassVar[bool] = False

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_parent", None)
        object.__setattr__(self, "_path", "")
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_pre_hooks", {})
        object.__setattr__(self, "_forward_hooks", {})
        object.__setattr__(self, "_trainer", None)  # set by compile

    # --- registration -------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() at the start of "
                                 f"__init__, before assigning {name!r}")
        for registry in (self._parameters, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
            object.__setattr__(value, "_parent", weakref.ref(self))
        elif name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise ArgumentTypeError(f"{type(self).__name__}: buffer {name!r} must be a Tensor or None")
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        """Keep a tensor that is state but not a weight (batch norm's running statistics)."""
        self._buffers[name] = tensor
        object.__setattr__(self, name, tensor)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: Module) -> None:
        setattr(self, name, module)

    # --- calling --------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: define forward(self, x) in your Module subclass")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        global _call_depth
        if _call_depth == 0:
            self._root()._assign_paths()
        _call_depth += 1
        try:
            with autograd.scope(self._path):
                if self._forward_pre_hooks:  # an empty dict: one test, the only cost without hooks
                    args = self._run_forward_pre_hooks(args)
                out = self.forward(*args, **kwargs)
                if self._forward_hooks:
                    out = self._run_forward_hooks(args, out)
        except ShapeError as err:
            if self._modules or repr(self) in str(err):
                raise
            # An op's own error inside a layer: say which layer, and where it sits in the model.
            raise ShapeError(f"{self!r}{self.where()}: {err}") from None
        finally:
            _call_depth -= 1
        return out

    # --- hooks ------------------------------------------------------------------
    def register_forward_hook(self, fn: Callable[[Module, tuple, Any], Any]) -> RemovableHandle:
        """Call ``fn(module, inputs, output)`` after each forward; returns a handle with ``.remove()``.

        ``inputs`` is the tuple of positional arguments. A hook that returns something other
        than None replaces the output (later hooks see the replacement). Hooks run in the
        order they were registered.
        """
        return RemovableHandle(self._forward_hooks, fn)

    def register_forward_pre_hook(self, fn: Callable[[Module, tuple], Any]) -> RemovableHandle:
        """Call ``fn(module, inputs)`` before each forward; returns a handle with ``.remove()``.

        A hook that returns something other than None replaces the positional inputs (a
        single value counts as a one-element tuple).
        """
        return RemovableHandle(self._forward_pre_hooks, fn)

    def _run_forward_pre_hooks(self, args: tuple) -> tuple:
        for fn in tuple(self._forward_pre_hooks.values()):  # a copy: a hook may remove itself
            result = fn(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        return args

    def _run_forward_hooks(self, args: tuple, out: Any) -> Any:
        for fn in tuple(self._forward_hooks.values()):
            result = fn(self, args, out)
            if result is not None:
                out = result
        return out

    def _root(self) -> Module:
        """The outermost module holding this one (itself when it has no parent)."""
        module = self
        while module._parent is not None and module._parent() is not None:
            module = module._parent()
        return module

    def _assign_paths(self) -> None:
        """Give every module below its dotted path and every Parameter its dotted name."""
        for path, module in self.named_modules():
            object.__setattr__(module, "_path", path)
            for name, p in module._parameters.items():
                if p is None:
                    continue
                full = f"{path}.{name}" if path else name
                if p.name is None or p.name == p._auto_name:
                    p.name = full
                    p._auto_name = full

    def where(self) -> str:
        """The text ' at [features.0]' that error messages add; empty for the root."""
        return f" at [{self._path}]" if self._path else ""

    # --- walking the tree -----------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(path, module) for this module and every one below it, each once, parents first."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            path, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield path, module
            children = [(f"{path}.{n}" if path else n, m) for n, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def named_parameters(self, recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) for every parameter, each once."""
        if self._parent is None:
            self._assign_paths()
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for path, module in modules:
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{path}.{name}" if path else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse):
            yield p

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for path, module in self.named_modules():
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{path}.{name}" if path else name), b

    def buffers(self) -> Iterator[Tensor]:
        for _, b in self.named_buffers():
            yield b

    # --- modes, gradients, placement -------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode: dropout drops, batch norm uses and updates batch statistics."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode: dropout is the identity, batch norm uses its running statistics."""
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, flag: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad = flag
        return self

    def to(self, target: str | Backend | Any) -> Module:
        """Move parameters and buffers, in place, to a backend ("numpy", "cupy") or a float dtype.

        The Parameter objects stay the same, so an optimizer built before keeps working
        (its state follows on its next step).
        """
        if isinstance(target, Backend) or (isinstance(target, str) and target.strip().lower() in ALIASES):
            backend = get_backend(target)
            convert = lambda t: t.move_(backend)  # noqa: E731
        else:
            try:
                dtype = np.dtype(target)
            except TypeError:
                dtype = None
            if dtype is None or dtype.kind != "f":
                raise ArgumentTypeError(f"{type(self).__name__}.to: {target!r} is neither a backend "
                                        "(numpy, cupy) nor a floating-point dtype")
            convert = lambda t: _cast(t, dtype)  # noqa: E731
        for t in list(self.parameters()) + list(self.buffers()):
            convert(t)
        return self

    def double(self) -> Module:
        """Parameters and buffers as float64 (gradient checks)."""
        return self.to("float64")

    def float(self) -> Module:
        return self.to("float32")

    def cpu(self) -> Module:
        return self.to("numpy")

    # --- state ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """Every parameter and buffer by dotted name, as detached tensors sharing the data."""
        out = {name: p.detach() for name, p in self.named_parameters()}
        out.update((name, b.detach()) for name, b in self.named_buffers())
        return out

    def load_state_dict(self, state: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters and buffers, in place, on their own backends.

        ``state`` maps dotted names to tensors or arrays: ``ag.load(path)``, or a PyTorch state
        dict as NumPy arrays (the names and layouts are PyTorch's; ``interop.from_torch`` converts
        one). A missing, unexpected or mis-shaped entry is an error naming it (with
        ``strict=False`` missing and unexpected entries are skipped and returned).
        """
        from ..serialization import CheckpointError

        if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
            what = type(state).__name__ if not isinstance(state, Mapping) else "a mapping with keys that are not text"
            raise ArgumentTypeError(f"{type(self).__name__}.load_state_dict: expected a state dict, a mapping of "
                                    f"dotted names to arrays (ag.load(path), model.state_dict()), got {what}")
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        missing = [k for k in own if k not in state]
        # PyTorch's batch norms also count their batches (for momentum=None); ours keep no count.
        unexpected = [k for k in state if k not in own and not _batch_count_of_ours(k, own)]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected {', '.join(unexpected)}")
            raise CheckpointError(f"{type(self).__name__}.load_state_dict: the state dict does not fit this "
                                  f"model: {'; '.join(parts)}. Build the same architecture that was "
                                  "saved, or pass strict=False to load the matching entries only")
        values = {}
        for name, target in own.items():  # check every shape first: never load half a checkpoint
            if name not in state:
                continue
            value = state[name]
            if isinstance(value, Tensor):  # from another backend: through the host
                value = value.numpy() if value.backend_object is not target.backend_object else value.data
            shape = tuple(getattr(value, "shape", ()))
            if shape != target.shape:
                raise CheckpointError(f"{type(self).__name__}.load_state_dict: entry {name!r} has shape "
                                      f"{shape_str(shape)}, the model's {shape_str(target.shape)}"
                                      f"{_layout_hint(shape, target.shape)}")
            values[name] = value
        for name, value in values.items():
            target = own[name]
            target.data[...] = target.backend_object.asarray(value, dtype=target.dtype)
            target.bump_version()
        return IncompatibleKeys(missing, unexpected)

    def save(self, path: str) -> None:
        """``ag.save(self.state_dict(), path)``: one .npz, written atomically.

        Under several processes (``mpiexec``) only rank 0 writes: data-parallel training keeps
        the same weights on every process. ``ag.save`` writes from whichever process calls it.
        """
        from ..distributed import world
        from ..serialization import save

        if world.is_main():
            save(self.state_dict(), path)

    # --- description --------------------------------------------------------------
    def extra_repr(self) -> str:
        """The constructor arguments shown in repr: "1, 32, kernel_size=3"."""
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head + ("" if not self.extra_repr() else ",")]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return "\n".join(lines) + "\n)"

    @contextmanager
    def switched_mode(self, training: bool) -> Iterator[None]:
        """Switch train/eval for a block and put every module's own flag back afterwards."""
        previous = [(m, m.training) for m in self.modules()]
        self.train(training)
        try:
            yield
        finally:
            for m, flag in previous:
                object.__setattr__(m, "training", flag)

    def summary(self, input_shape: tuple, print_fn: Callable[[str], Any] = print) -> int:
        """Print a Keras-style table (layer, output shape, parameter count) and return the total.

        ``input_shape`` leaves out the batch axis: ``(1, 28, 28)`` for MNIST images.
        Shapes come from one forward pass on a zero batch of 1, under no_grad and in
        evaluation mode (the model's mode is restored afterwards).
        """
        return summary(self, input_shape, print_fn)

    # --- Keras's workflow: each method hands over to the model's Trainer (nn/training.py) ---
    def compile(self, optimizer: Any = "rmsprop", loss: Any = "sparse_categorical_crossentropy",
                metrics: list | None = None, from_logits: bool | None = None) -> None:
        """Choose the optimizer, the loss and the metrics for ``fit`` and ``evaluate``.

        ``optimizer``: "rmsprop", "adam", "adamw", "sgd", "adadelta" (default settings) or an
        optimizer object. ``loss``: "sparse_categorical_crossentropy" (integer labels),
        "categorical_crossentropy" (one-hot labels), "mse", or a callable ``loss(output, y)``.
        ``metrics``: ``["accuracy"]`` or None. The classification losses read logits unless
        the model's last layer is ``Softmax``; then they read the Softmax's input, which is
        as stable as cross-entropy on logits. ``from_logits`` overrides: True means the
        outputs are logits, False that they are probabilities.
        """
        trainer = Trainer(self)
        trainer.compile(optimizer, loss, metrics, from_logits)
        object.__setattr__(self, "_trainer", trainer)  # only once compile has succeeded

    def fit(self, x: Any, y: Any, epochs: int = 5, batch_size: int = 128, validation_data: tuple | None = None,
            shuffle: bool = True, verbose: int = 1, callbacks: list | None = None, validation_split: float = 0.0,
            initial_epoch: int = 0) -> Any:
        """Train for ``epochs`` passes over (x, y) in mini-batches; return a ``History``.

        ``verbose``: 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
        Ctrl-C stops after the current step and returns the History so far. A loss or a
        gradient that is NaN or Inf stops fit before that step's update (``ag.NonFiniteError``,
        naming the epoch, the step and the value): the model keeps its last good weights.
        Every argument is checked first; labels for the sparse loss must be class indices.

        As in Keras, ``validation_split`` holds out the last fraction of (x, y) (taken before
        shuffling) as validation data, and ``initial_epoch`` resumes the count at that epoch.

        Under ``mpiexec`` every process trains the model on its own part of each epoch and
        the gradients are averaged: ``batch_size`` is per process (autograd_cnn.distributed).
        """
        return self._trainer_now().fit(x, y, epochs, batch_size, validation_data, shuffle, verbose, callbacks,
                                       validation_split, initial_epoch)

    def evaluate(self, x: Any, y: Any, batch_size: int = 128, verbose: int = 1) -> Any:
        """(loss, accuracy) on (x, y) in evaluation mode; the loss alone without the accuracy metric."""
        return self._trainer_now().evaluate(x, y, batch_size, verbose)

    def predict(self, x: Any, batch_size: int = 128, verbose: int = 0) -> np.ndarray:
        """The model's outputs for x as a NumPy array; class probabilities for classifiers.

        A model compiled with a classification loss on logits gets a softmax applied,
        so ``predict`` returns probabilities whether or not it ends in ``Softmax``.
        """
        return self._trainer_now().predict(x, batch_size, verbose)

    def _trainer_now(self) -> Any:
        """The Trainer compile made, or an uncompiled one (it predicts, and says to compile for the rest)."""
        return self._trainer if self._trainer is not None else Trainer(self)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_parent"] = None  # a weak reference cannot be pickled; __setstate__ relinks children
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for module in self._modules.values():
            if module is not None:
                object.__setattr__(module, "_parent", weakref.ref(self))

    def __dir__(self) -> list:
        return sorted(set(super().__dir__()) | set(self._modules) | set(self._parameters))


def _batch_count_of_ours(key: str, own: dict) -> bool:
    """True for PyTorch's ``<path>.num_batches_tracked`` where ``<path>`` is one of our batch norms."""
    path, _, leaf = key.rpartition(".")
    return leaf == "num_batches_tracked" and (f"{path}.running_mean" if path else "running_mean") in own


def _layout_hint(shape: tuple, want: tuple) -> str:
    """What to do when a weight holds the right sizes in another order (a Keras layout)."""
    if len(shape) != len(want) or sorted(shape) != sorted(want) or len(want) < 2:
        return ""
    return ("; the same sizes in another order: Keras keeps a Dense kernel as (in, out) and a Conv2D "
            "kernel as (KH, KW, in, out), where PyTorch and autograd_cnn use (out, in) and (out, in, KH, KW): "
            "transpose it first, e.g. kernel.T or kernel.transpose(3, 2, 0, 1)")


def _cast(t: Tensor, dtype: Any) -> None:
    if t.data.dtype.kind != "f" or t.data.dtype == dtype:
        return
    t.data = t.data.astype(dtype)
    if t.grad is not None:
        t.grad = Tensor(t.grad.data.astype(dtype), t.backend_object)
