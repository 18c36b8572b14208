"""The engine: Function and its Context (the graph node), apply(), the backward walk, and
the public ways to look at a graph and to hook into backward.

A ``Function`` has a ``forward`` on backend arrays and a ``backward`` written with the
engine's own differentiable ops. ``apply`` runs forward and, when a gradient is wanted,
records a ``Context`` node as the output's ``grad_fn``. ``backward`` walks the nodes in
reverse topological order without recursion, and sums each broadcast gradient back to its
input's shape (``SumTo``, the engine's one op of its own).

Inspecting a graph (what ``visual``, the exporters and the tests read; nothing else here is
theirs to touch): ``graph_of(output)`` gives the nodes in the order backward runs them, each
``Context`` with its ``name``, ``fn``, ``inputs``, ``params``, ``scope``, ``saved``,
``needs_input_grad`` and ``unbroadcast``. Hooks: ``Tensor.register_hook``,
``Tensor.register_post_accumulate_grad_hook``, ``register_step_hook``, and ``queue_callback``
(run something once when the backward that is running ends).
"""
from __future__ import annotations

import functools
import gc
import inspect
import math
import os
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .backends import get_backend
from .errors import (
    AnomalyError,
    ArgumentError,
    ArgumentTypeError,
    AutogradError,
    BackendError,
    GraphError,
    ShapeError,
    shape_str,
)
from .hooks import RemovableHandle
from .tensor import Tensor

_grad_enabled = True  # set by no_grad, enable_grad and set_grad_enabled
_anomaly = False  # set by detect_anomaly and set_detect_anomaly
_walking = False  # True during a backward walk: anomaly mode checks its gradients, not its ops


# The module path (e.g. "features.0") of the nn.Module whose forward is running; each
# recorded node keeps it as ``ctx.scope`` so the renderer can collapse a graph by layer.
_scope: str = ""


class scope:
    """``with scope("features.0"):`` tags the nodes recorded inside with that path."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        global _scope
        self.previous = _scope
        _scope = self.path

    def __exit__(self, *exc: object) -> None:
        global _scope
        _scope = self.previous


def is_grad_enabled() -> bool:
    """True while operations record the graph."""
    return _grad_enabled


def is_anomaly_enabled() -> bool:
    """True while every op checks its output and its gradients for NaN and Inf (``detect_anomaly``)."""
    return _anomaly


class _Switch:
    """The one mechanism behind the engine's switches (``no_grad``, ``enable_grad``,
    ``set_grad_enabled``; ``detect_anomaly``, ``set_detect_anomaly``): a ``with`` block that sets
    the module global ``flag`` to ``mode`` and restores the caller's value on the way out (nested
    in any order, the same object re-entered too), or a decorator that does the same per call."""

    flag: str  # the name of the module global this switch sets
    mode: bool

    def __init__(self) -> None:
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        self._previous.append(globals()[self.flag])
        globals()[self.flag] = self.mode

    def __exit__(self, *exc: object) -> None:
        globals()[self.flag] = self._previous.pop()

    def _fresh(self) -> _Switch:
        return type(self)()

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():  # one block per call: recursion and threads nest as blocks do
                return func(*args, **kwargs)
        return wrapper


class _SetAtOnce(_Switch):
    """A switch that takes effect when called, as PyTorch's ``set_grad_enabled(flag)``; as a
    ``with`` block or a decorator it holds only inside and restores the caller's value."""

    def __init__(self, mode: bool) -> None:
        super().__init__()
        self.mode = bool(mode)
        self._at_call: bool | None = globals()[self.flag]  # what the first ``with`` restores
        globals()[self.flag] = self.mode

    def __enter__(self) -> None:
        if self._at_call is None:
            super().__enter__()
        else:  # entered right after the call, which has set the value already
            self._previous.append(self._at_call)
            self._at_call = None

    def _fresh(self) -> _Switch:
        return type(self)(self.mode)

    def __call__(self, func: Callable) -> Callable:
        if self._at_call is not None:  # as a decorator it sets nothing at definition time
            globals()[self.flag] = self._at_call
            self._at_call = None
        return super().__call__(func)


class no_grad(_Switch):
    """``with ag.no_grad():`` (or ``@ag.no_grad()``) runs ops without recording a graph."""

    flag, mode = "_grad_enabled", False


class enable_grad(_Switch):
    """``with ag.enable_grad():`` (or ``@ag.enable_grad()``) records the graph even inside ``no_grad``."""

    flag, mode = "_grad_enabled", True


class set_grad_enabled(_SetAtOnce):
    """``ag.set_grad_enabled(flag)`` turns graph recording on or off at once; as a ``with`` block
    or a decorator it holds only inside."""

    flag = "_grad_enabled"


class detect_anomaly(_Switch):
    """``with ag.detect_anomaly():`` (or ``@ag.detect_anomaly()``): the first op whose forward output
    or backward gradient holds NaN or Inf raises ``AnomalyError`` naming the op, its module path,
    the shapes and the line that created it; a value an op saved for backward that changed behind
    the library's back is caught too. Slow (each op checks and copies what it saves): for
    finding a bug, not for training."""

    flag, mode = "_anomaly", True


class set_detect_anomaly(_SetAtOnce):
    """``ag.set_detect_anomaly(flag)`` turns anomaly checks on or off at once (see ``detect_anomaly``)."""

    flag = "_anomaly"


# Callables told of every backward step, as (node, grad_output, input_grads): register_step_hook.
_step_hooks: list[Callable[[Context, Any, tuple], None]] = []


def register_step_hook(fn: Callable[[Context, Any, tuple], None]) -> RemovableHandle:
    """Call ``fn(node, grad_output, input_grads)`` after each node's backward, in every backward
    until the handle's ``remove()`` (the step-by-step pictures listen here)."""
    _step_hooks.append(fn)
    return RemovableHandle(_step_hooks, fn)


# One list per backward walk in progress (a hook may run a backward of its own): the
# callables queue_callback added, run when that walk ends.
_walk_callbacks: list[list[Callable[[], None]]] = []


def queue_callback(fn: Callable[[], None]) -> bool:
    """Run ``fn()`` once when the backward now running ends: after every gradient and hook, before
    ``backward()`` returns (data-parallel training waits for its last all-reduce there).

    Call it from a hook during backward. Callbacks run in the order queued; one queued by a
    callback runs too. A callable already queued for this backward is not queued again: the
    return value says whether this call queued it. A backward that raises runs none of them.
    """
    if not _walk_callbacks:
        raise GraphError("queue_callback: no backward is running; call it from a hook that runs "
                         "during backward() (register_post_accumulate_grad_hook, register_hook)")
    queued = _walk_callbacks[-1]
    if fn in queued:
        return False
    queued.append(fn)
    return True


_FLOAT32 = "float32"  # what Python floats become, as in PyTorch
_NEEDS: dict[tuple, tuple] = {}  # the needs_input_grad tuples, shared by the nodes
_NO_UNBROADCAST: dict = {}  # shared by the nodes that un-broadcast nothing (never written to)


class Context:
    """What forward leaves for backward. It is also the graph node: ``tensor.grad_fn``.

    What a reader of the graph may use (``graph_of`` gives the nodes in backward's order):

    - ``name`` (the op, ``"Conv2d"``), ``fn`` (its ``Function`` class), ``params`` (the op's
      settings, as given to ``apply``: stride, axis, ...), ``scope`` (the module path);
    - ``inputs``, the input tensors (after a backward without ``retain_graph``, a
      ``ReleasedTensor`` in place of each one another node made), and ``needs_input_grad``;
    - ``saved``, the values forward saved for backward (tensors of the graph where they are
      one, other arrays as they are), or None once a backward freed them (``freed``);
    - ``unbroadcast``: for each input whose gradient the engine summed back to the input's
      broadcast shape, ``{input index: the gradient's shape before}``; filled in by backward;
    - ``rule_lines()``, the derivative rule of each input, as ``fn.rules`` writes it.

    ``saved_tensors`` is backward's own view of ``saved`` (tensors, so that a
    ``create_graph=True`` backward can differentiate through them).

    A node holds no reference to its output tensor: the output holds the node (``grad_fn``),
    and a link back would be a cycle, or one more object per op (a weak reference) for the
    cycle collector to scan. Backward finds each node's output on the way, as the input of
    the node it came from, and where it is needed sets ``output`` for the time that node's
    backward runs.
    """

    # detect_anomaly's notes, set on the nodes it watches; the class defaults cost the others nothing.
    created_at: str = "a line outside detect_anomaly"
    saved_copies: list | None = None

    # The engine's own fields live in slots (fast, and a backward that frees saved values
    # does not grow each node's __dict__); an op's own attributes (ctx.in_shape) go in __dict__.
    __slots__ = ("fn", "backend", "params", "scope", "records", "inputs", "needs_input_grad", "_saved",
                 "output", "freed", "out_backend", "unbroadcast", "versions", "__dict__", "__weakref__")

    def __init__(self, fn: type, backend: Any, params: dict | None = None) -> None:
        self.fn = fn
        self.backend = backend
        self.params = params if params is not None else {}
        self.scope = _scope
        self.records = False  # set by apply before forward: will backward run through this node?
        self.inputs: tuple = ()  # apply fills these three when it records the node
        self.needs_input_grad: tuple = ()
        self.output: Any = None  # the output tensor, while backward runs through this node
        self._saved: tuple | None = ()
        self.freed = False
        self.out_backend: Any = None  # an op whose output lives elsewhere (ToBackend) sets this
        self.unbroadcast: dict[int, tuple] = _NO_UNBROADCAST  # replaced by the first entry
        self.versions: tuple | None = None  # the inputs' versions when forward saved values (None: all 0)

    @property
    def xp(self) -> Any:
        return self.backend.xp

    @property
    def name(self) -> str:
        return self.fn.__name__

    def save_for_backward(self, *values: Any) -> None:
        """Keep arrays (inputs, the output, or others) for backward."""
        # Kept as plain arrays: a tuple of arrays is one the cycle collector soon stops
        # scanning, where a tuple of tensors stays in its every pass over the heap.
        self._saved = values

    @property
    def saved_tensors(self) -> tuple:
        if self.freed:
            raise GraphError(
                f"{self.name}: its saved values were freed by an earlier backward(). "
                "Pass retain_graph=True to the first backward() to run backward twice.")
        self._check_unchanged()
        return tuple([v if isinstance(v, Tensor) else Tensor(v, self.backend)
                      for v in self.saved_sources(self.output)])

    def _check_unchanged(self) -> None:
        """Refuse to differentiate with saved values that changed since forward: an input changed
        in place through the library (its version moved on), or, under detect_anomaly, any saved
        array changed behind the library's back."""
        versions = self.versions
        for i, t in enumerate(self.inputs):
            then = versions[i] if versions is not None else 0
            if t._version != then and any(v is t._data for v in self._saved):
                who = repr(t.name) if t.name else f"input {i} ({self.fn.input_names(i + 1)[i]})"
                raise GraphError(
                    f"{self.name}{_where(self)}: {who} of shape {shape_str(t.shape)}, which {self.name} saved for "
                    f"backward, was changed in place after the forward pass (version {then} then, "
                    f"{t._version} now), so its gradient would be computed with the new values. Compute the "
                    "forward pass again after the change (call optimizer.step() after loss.backward(), not "
                    "between the forward pass and it), or change a copy.")
        if self.saved_copies is not None:
            for k, (value, copy) in enumerate(zip(self._saved, self.saved_copies)):
                if copy is not None and not self.xp.array_equal(value, copy, equal_nan=True):
                    raise AnomalyError(
                        f"{self.name}{_where(self)}: saved value {k} of shape {shape_str(value.shape)} changed "
                        f"after the forward pass, behind the library's back (a write into .data's array?); "
                        f"the op was created at {self.created_at}. Change a copy instead.")

    @property
    def saved(self) -> list | None:
        """The values forward saved, each as the graph's tensor that holds it where there is one
        (an input, or the output while backward runs here), else as it is; None once freed."""
        if self.freed or self._saved is None:
            return None
        return self.saved_sources(self.output)

    def rule_lines(self) -> list[str]:
        """The derivative rule of each input that needs a gradient (``fn.rules``)."""
        return self.fn.rule_lines(len(self.inputs), self.needs_input_grad)

    def saved_sources(self, output: Any = None) -> list:
        """The saved values, each as the graph's tensor that holds it (an input, or ``output``
        where given), so that a create_graph backward differentiates through it; other
        values (a mask, an index, the output's array when no ``output`` is given) as they are."""
        sources = []
        for value in self._saved:
            if output is not None and value is output._data:
                value = output
            else:
                for t in self.inputs:
                    if value is t._data:
                        value = t
                        break
            sources.append(value)
        return sources

    def release(self, stand_ins: dict) -> None:
        """Free what backward needed here, once it has run through this node without
        ``retain_graph``: the saved values, and the input tensors that other nodes made. Each
        of those becomes a ``ReleasedTensor`` (one per tensor, shared through ``stand_ins``), so
        its memory goes once the last node that read it has run, as in PyTorch, while the
        graph keeps its shape for the pictures. Leaves, and tensors with a name or
        ``retain_grad()``, stay."""
        self._saved = None
        self.freed = True
        inputs, changed = [], False
        for t in self.inputs:
            if t.grad_fn is not None and t.name is None and not t._retains_grad and type(t) is not ReleasedTensor:
                stand_in = stand_ins.get(t.grad_fn)
                if stand_in is None:
                    stand_in = stand_ins[t.grad_fn] = ReleasedTensor(t)
                t, changed = stand_in, True
            inputs.append(t)
        if changed:
            self.inputs = tuple(inputs)

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"


class ReleasedTensor:
    """A tensor of a graph after a backward that did not retain it: the node that made it,
    its shape and dtype, but no values (``numpy()`` is None)."""

    __slots__ = ("grad_fn", "shape", "dtype")
    requires_grad = True
    name = None  # a named tensor is never released
    grad = None
    _retains_grad = False
    _grad_hooks = _post_hooks = None

    def __init__(self, tensor: Any) -> None:
        self.grad_fn = tensor.grad_fn
        self.shape = tensor._data.shape
        self.dtype = tensor._data.dtype

    @property
    def data(self) -> ReleasedTensor:
        """Its shape and dtype alone: what a second backward through a node that saved
        nothing (an Add) checks gradients against; a node that saved values says they are freed."""
        return self

    _data = data  # the engine reads a tensor's array by this name on its hot paths

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def numpy(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<released tensor of shape {shape_str(self.shape)}, made by {self.grad_fn.name}>"


GRAD_OUT = "∂L/∂y"  # how a rule writes the gradient that arrives from above


class Function:
    """An op: ``forward(ctx, *arrays, **params)`` and ``backward(ctx, grad) -> grads``.

    ``rules`` writes out backward's derivative for the pictures, one line per tensor input in
    the order of forward's arguments (one line alone serves every input: Concat's). ``y`` is the
    op's output and ``∂L/∂y`` the gradient arriving from above. ``saved_names`` names what forward
    saves, in ``save_for_backward``'s order ("the max-pool mask"); where it names nothing, the
    pictures call a saved input by its argument and the saved output ``y``.
    """

    # False for ops whose output carries no gradient (comparisons, argmax, one-hot).
    differentiable = True
    rules: tuple[str, ...] = ()
    saved_names: tuple[str, ...] = ()

    @staticmethod
    def forward(ctx: Context, *args: Any, **params: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def input_names(cls, count: int) -> list[str]:
        """The names forward gives its first ``count`` tensor inputs (``a, b``; ``x, weight, bias``)."""
        names = cls.__dict__.get("_input_names")
        if names is None:
            params = list(inspect.signature(cls.forward).parameters.values())[1:]
            names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            cls._input_names = names
        return [names[i] if i < len(names) else f"input{i}" for i in range(count)]

    @classmethod
    def rule_lines(cls, count: int, needs: Sequence[bool] = ()) -> list[str]:
        """The rule of each of ``count`` inputs that needs a gradient, from ``rules``; a generic
        chain-rule line where the op has none."""
        out = []
        for i, arg in enumerate(cls.input_names(count)):
            if i < len(needs) and not needs[i]:
                continue
            if i < len(cls.rules) or len(cls.rules) == 1:
                out.append(cls.rules[min(i, len(cls.rules) - 1)])
            else:
                out.append(f"∂L/∂{arg} = {GRAD_OUT} · ∂y/∂{arg}   ({cls.__name__}.backward)")
        return list(dict.fromkeys(out))  # Concat's inputs share one line

    @classmethod
    def apply(cls, *inputs: Any, **params: Any) -> Any:
        """Run ``forward`` on the inputs' arrays; record the node when a gradient is wanted."""
        backend = None
        arrays, needs = [], []
        for t in inputs:
            if type(t) is not Tensor and not isinstance(t, Tensor):
                # Numbers and arrays become constant tensors, then the op runs on those.
                return cls.apply(*_as_tensors(cls.__name__, inputs), **params)
            if t._backend is not backend:
                if backend is not None:  # numpy and numba hold the same arrays: they mix
                    backend = backend.mixed_with(t._backend) or _raise(_two_backends(cls.__name__, backend, t._backend))
                else:
                    backend = t._backend
            arrays.append(t._data)
            needs.append(t.requires_grad)
        if backend is None:
            raise GraphError(f"{cls.__name__}: needs at least one tensor input")
        ctx = Context(cls, backend, params)
        # Known before forward, so a forward can skip work that only backward needs.
        ctx.records = requires_grad = True in needs and _grad_enabled and cls.differentiable
        try:
            out = cls.forward(ctx, *arrays, **params)
        except AutogradError:
            raise  # our own errors already say what went wrong
        except (ValueError, TypeError, IndexError) as err:
            # A kernel refused these inputs: name the op, their shapes and dtypes, and the reason.
            shapes = ", ".join(shape_str(t.shape) for t in inputs)
            dtypes = ", ".join(str(t.dtype) for t in inputs)
            error = ArgumentTypeError if isinstance(err, TypeError) else ShapeError
            raise error(f"{cls.__name__}: cannot apply to inputs of shapes {shapes} and dtypes {dtypes} "
                        f"({type(err).__name__}: {err})") from None
        result = Tensor(out, ctx.out_backend or backend, requires_grad)
        if requires_grad:
            ctx.inputs = inputs
            needs = tuple(needs)
            # One shared tuple per pattern: a node's own would be one more object to scan.
            ctx.needs_input_grad = _NEEDS.setdefault(needs, needs) if len(needs) <= 4 else needs
            if ctx._saved:
                for t in inputs:  # most inputs were never changed in place: None says all at 0
                    if t._version:
                        ctx.versions = tuple([t._version for t in inputs])
                        break
            result.grad_fn = ctx
        if _anomaly and not _walking:
            _watch(ctx, inputs, out, requires_grad)
        return result


# --------------------------------------------------------------------------- anomaly mode


def _watch(ctx: Context, inputs: Sequence[Tensor], out: Any, recorded: bool) -> None:
    """detect_anomaly's forward side: note where the op was created, copy what it saved, and
    stop at the first output that holds NaN or Inf."""
    ctx.created_at = _user_line()
    if recorded and ctx._saved:
        ctx.saved_copies = [ctx.xp.array(v, copy=True) if ctx.backend.is_array(v) else None for v in ctx._saved]
    bad = _non_finite(ctx.xp, out)
    if bad:
        shapes = ", ".join(shape_str(t.shape) for t in inputs)
        raise AnomalyError(f"{ctx.name}{_where(ctx)}: its output of shape {shape_str(out.shape)} holds {bad}, "
                           f"from inputs of shapes {shapes}, at {ctx.created_at}. Look at this op's inputs "
                           "(a log of 0, a square root of a negative number, a division by 0, an overflow).")


def _check_grads(node: Context, input_grads: tuple) -> None:
    """detect_anomaly's backward side: stop at the first gradient that holds NaN or Inf."""
    names = node.fn.input_names(len(node.inputs))
    for i, g in enumerate(input_grads):
        bad = _non_finite(node.xp, g._data) if g is not None else ""
        if bad:
            raise AnomalyError(
                f"{node.name}Backward{_where(node)}: the gradient for its input {names[i]} of shape "
                f"{shape_str(g.shape)} holds {bad}; the op was created at "
                f"{node.created_at}.")


def _non_finite(xp: Any, array: Any) -> str:
    """'NaN', 'Inf' or '' for a float array (integers and booleans are always finite)."""
    if array.dtype.kind not in "fc" or bool(xp.isfinite(array).all()):
        return ""
    return "NaN" if bool(xp.isnan(array).any()) else "Inf"


def _user_line() -> str:
    """The first line of the stack outside this package: where the user's code made the op."""
    package = os.path.dirname(os.path.abspath(__file__))
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(package + os.sep):
            return f"{frame.filename}:{frame.lineno} ({(frame.line or '').strip()})"
    return "an unknown line"


def _where(node: Context) -> str:
    return f" in {node.scope}" if node.scope else ""


def _raise(error: Exception) -> Any:
    raise error


def _two_backends(op: str, first: Any, second: Any) -> BackendError:
    return BackendError(
        f"{op}: inputs live on two backends, {first.name} and {second.name}. Move one with "
        f".to({first.name!r}) or .to({second.name!r}); nothing is copied behind your back.")


def _as_tensors(op: str, inputs: Sequence[Any]) -> list:
    """Inputs as tensors. Python numbers and lists take the dtype of the op's first float tensor
    input (a float32 graph stays float32), else Python ints that of its first integer tensor (an
    int8 tensor plus 1 stays int8), as PyTorch's scalars do."""
    like = dtype = None
    for x in inputs:
        if isinstance(x, Tensor):
            if like is None:
                like = x
            if x.data.dtype.kind in "fc":
                dtype = x.data.dtype
                break
    if like is None:
        backend = get_backend()
    else:
        backend = like._backend
    ints = like.data.dtype if like is not None and dtype is None and like.data.dtype.kind in "iu" else None
    return [x if isinstance(x, Tensor) else _constant(op, x, backend, dtype, ints) for x in inputs]


def as_tensor(op: str, x: Any, like: Any = None) -> Tensor:
    """An op's input as a tensor, for a wrapper that reads its shape before ``apply``: a Tensor as it
    is; a number, a list or an array as a constant (on ``like``'s backend, in its dtype), as
    ``Function.apply`` makes them; anything else an ArgumentTypeError naming ``op``."""
    if isinstance(x, Tensor):
        return x
    return _as_tensors(op, [like, x] if isinstance(like, Tensor) else [x])[-1]


def _constant(op: str, x: Any, backend: Any, dtype: Any, ints: Any = None) -> Any:
    if isinstance(x, np.generic) and x.dtype.kind in "biuf":
        x = x.item()  # a NumPy number is a number, as Python's are (not an array of another backend)
    if isinstance(x, float):  # a float32 graph stays float32: 2.5 * x is not an upcast
        return Tensor(backend.scalar(x, dtype if dtype is not None else _FLOAT32), backend)
    if isinstance(x, int) and not isinstance(x, bool) and dtype is None:
        if ints is not None and not np.iinfo(ints).min <= x <= np.iinfo(ints).max:
            raise ArgumentError(f"{op}: the number {x} does not fit the other input's {ints}; make the tensor "
                                "a wider type with .astype('int64') first")
        if ints is None and not np.iinfo(np.int64).min <= x <= np.iinfo(np.int64).max:
            raise ArgumentError(f"{op}: the number {x} does not fit int64; use a float")
        return Tensor(backend.scalar(x, ints), backend)
    if isinstance(x, (bool, int)):
        return Tensor(backend.scalar(x, dtype), backend)
    if backend.is_array(x):
        return Tensor(_numbers(op, x, f"an array of {x.dtype}"), backend)
    if hasattr(x, "__array__") and not isinstance(x, (list, tuple)):
        # An array of another library would mean a hidden host <-> GPU copy: refuse it.
        source = "CuPy" if type(x).__module__.startswith("cupy") else type(x).__module__.split(".")[0]
        raise BackendError(f"{op}: got a {source} array while the other inputs are on {backend.name}; "
                           f"make it a tensor with ag.tensor(array, backend={backend.name!r}) first. "
                           "Nothing is copied between host and GPU behind your back.")
    if isinstance(x, (list, tuple)):
        try:
            host = np.asarray(x)
        except (ValueError, TypeError):
            host = np.asarray(None)  # ragged: refused below
        _numbers(op, host, f"the list {x!r:.40}")
        if host.dtype.kind == "f":  # as Python floats: the graph's float dtype, else float32
            host = host.astype(dtype if dtype is not None else _FLOAT32)
        return Tensor(backend.from_host(host), backend)
    raise ArgumentTypeError(f"{op}: cannot use an input of type {type(x).__name__}; pass a Tensor, "
                            "an array or a number")


def _numbers(op: str, array: Any, what: str) -> Any:
    """``array`` if it holds numbers: text or Python objects are never taken as numbers."""
    if array.dtype.kind not in "biufc":
        raise ArgumentTypeError(f"{op}: cannot use {what} as an input; tensors hold numbers, never text, "
                                "Python objects or lists of unequal length")
    return array


# --------------------------------------------------------------------------- un-broadcasting
# The engine's own pair of ops: backward sums each broadcast gradient back to its input's
# shape (SumTo), so that no binary op's backward handles broadcasting itself.


class SumTo(Function):
    """y = a summed over broadcast axes down to ``shape`` (un-broadcasting)"""
    rules = (f"∂L/∂a = {GRAD_OUT} copied along the summed axes",)

    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        lead = a.ndim - len(shape)
        if lead < 0:
            raise ShapeError(f"SumTo: cannot sum {shape_str(a.shape)} to the larger {shape_str(shape)}")
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(shape) if n == 1 and a.shape[lead + i] != 1)
        y = a.sum(axis=axes, keepdims=True) if axes else a
        return y.reshape(shape)

    @staticmethod
    def backward(ctx, gy):
        return broadcast_to(gy, ctx.in_shape)


class BroadcastTo(Function):
    """y = a repeated along broadcast axes up to ``shape``"""
    rules = (f"∂L/∂a = {GRAD_OUT} summed over the broadcast axes",)

    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        return ctx.xp.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, gy):
        return sum_to(gy, ctx.in_shape)


def sum_to(a: Tensor, shape: tuple) -> Tensor:
    """Sum a broadcast result back to ``shape``: the engine's un-broadcasting step."""
    return SumTo.apply(a, shape=tuple(shape))


def broadcast_to(a: Tensor, shape: tuple) -> Tensor:
    """``a`` repeated along new or size-1 axes up to ``shape`` (a view, no copy)."""
    return BroadcastTo.apply(a, shape=tuple(shape))


# --------------------------------------------------------------------------- inspection


class Graph:
    """The graph behind one tensor, as backward sees it (``graph_of(output)``).

    ``nodes`` lists the op nodes (``Context``) in the order backward runs them: each after
    every node that consumes its output, so ``reversed(graph.nodes)`` is forward's order.
    ``output_of(node)`` is the tensor that node made (a ``ReleasedTensor`` where a backward
    without ``retain_graph`` let it go); ``leaves`` the tensors no op made, in first-use order.
    Reading a graph changes nothing in it.
    """

    def __init__(self, output: Tensor) -> None:
        if not isinstance(output, Tensor):
            raise TypeError(f"graph_of: expected a Tensor, got {type(output).__name__}")
        self.output = output
        self.nodes: list[Context] = _topological_order([output.grad_fn]) if output.grad_fn is not None else []
        # A node does not hold its output; each output is the input of a later node, or the
        # root. Where a freeing backward left a ReleasedTensor in one place, the tensor itself
        # is taken from any other node that still holds it.
        self._made: dict[int, Any] = {id(output.grad_fn): output}
        for node in self.nodes:
            for t in node.inputs:
                if t.grad_fn is not None and not isinstance(self._made.get(id(t.grad_fn)), Tensor):
                    self._made[id(t.grad_fn)] = t
        leaves = {id(t): t for node in reversed(self.nodes) for t in node.inputs if t.grad_fn is None}
        self.leaves: list[Tensor] = list(leaves.values())

    def output_of(self, node: Context) -> Any:
        return self._made[id(node)]

    def __iter__(self) -> Iterator[Context]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)


def graph_of(output: Tensor) -> Graph:
    """The nodes behind ``output`` in backward's order, with their inputs, saved values, scope and
    un-broadcast steps: the public way to read a recorded graph."""
    return Graph(output)


# --------------------------------------------------------------------------- backward


def _topological_order(roots: Iterable[Context]) -> list:
    """Nodes reachable from ``roots``, each after every node that consumes its output."""
    order, visited = [], set()
    stack = [(node, False) for node in roots]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        for t in node.inputs:
            parent = t.grad_fn
            if parent is not None and parent not in visited:
                stack.append((parent, False))
    order.reverse()  # consumers before producers
    return order


def run_backward(outputs: Sequence[Any], grads: Sequence[Any], retain_graph: bool = False,
                 create_graph: bool = False, inputs: Sequence[Any] | None = None) -> list | None:
    """Propagate ``grads`` from ``outputs`` back through the graph.

    With ``inputs`` None, gradients accumulate into ``.grad`` of leaves (and of tensors
    that called ``retain_grad()``). Otherwise the gradients of ``inputs`` are returned
    and no ``.grad`` is touched (``ag.grad``). What hooks gave to ``queue_callback`` runs last.
    """
    callbacks: list[Callable[[], None]] = []
    _walk_callbacks.append(callbacks)
    try:
        found = _walk(outputs, grads, retain_graph, create_graph, inputs)
        with set_grad_enabled(create_graph):
            for fn in callbacks:  # the list may grow while it runs: a callback may queue another
                fn()
    finally:
        _walk_callbacks.pop()
    return found


def _walk(outputs: Sequence[Any], grads: Sequence[Any], retain_graph: bool, create_graph: bool,
          inputs: Sequence[Any] | None) -> list | None:
    """The walk itself: each node's backward in reverse topological order, without recursion."""
    global _grad_enabled, _walking
    wanted = {id(t): i for i, t in enumerate(inputs)} if inputs is not None else None
    found: list = [None] * len(inputs) if inputs is not None else []
    pending: dict[Context, Any] = {}  # node -> the gradient of its output, summed so far
    # node -> its output tensor, as met on the way: for retain_grad(), its hooks, ag.grad's
    # inputs, and a create_graph backward to differentiate through a saved output. Kept only
    # then: it would hold an output's memory until its node had run.
    made: dict[Context, Any] = {}
    keep_outputs = create_graph or wanted is not None
    stand_ins: dict[Context, ReleasedTensor] = {}  # node -> its released output (no retain_graph)
    roots = []
    for out, g in zip(outputs, grads):
        if out.grad_fn is None:
            _deliver(out, g, wanted, found)
            continue
        pending[out.grad_fn] = _accumulate(pending.get(out.grad_fn), g)
        made[out.grad_fn] = out
        roots.append(out.grad_fn)

    previous, was_walking = _grad_enabled, _walking
    _grad_enabled, _walking = create_graph, True
    # The walk makes no reference cycles, yet its many short-lived gradients and nodes set off
    # the cycle collector, whose full passes scan the whole heap (slow beside a large library's
    # objects). Paused for the walk only; the caller's setting comes back in `finally`.
    collecting = gc.isenabled()
    gc.disable()
    try:
        order = _topological_order(roots)
        held: _HeldLeaves | None = None  # made once a leaf with hooks gets a gradient
        for k, node in enumerate(order):
            grad = pending.pop(node, None)
            if grad is None:
                if held is not None:
                    held.passed(node, wanted, found)
                continue
            node.output = output = made.pop(node, None)
            if output is not None:
                if output._grad_hooks:
                    grad = _run_grad_hooks(output, grad)
                if output._retains_grad or (wanted is not None and id(output) in wanted):
                    _deliver(output, grad, wanted, found)
            try:
                input_grads = _step(node, grad)
            finally:
                node.output = None  # held only for this step: the output holds the node
            for t, g in zip(node.inputs, input_grads):
                if g is None:
                    continue
                parent = t.grad_fn
                if parent is None:
                    if t._grad_hooks or t._post_hooks:
                        held = held or _HeldLeaves(order, k)
                        held.add(t, g)
                    else:
                        _deliver(t, g, wanted, found)
                elif parent in pending:  # a tensor that fed several ops: sum its gradients
                    pending[parent] = _accumulate(pending[parent], g)
                else:
                    pending[parent] = g
                    if keep_outputs or t._retains_grad or t._grad_hooks:
                        made[parent] = t
            if held is not None:
                held.passed(node, wanted, found)
            if not retain_graph:
                node.release(stand_ins)
    finally:
        _grad_enabled, _walking = previous, was_walking
        if collecting:
            gc.enable()
    return found if inputs is not None else None


class _HeldLeaves:
    """The gradients of leaves that have hooks, summed over the leaf's uses and delivered once
    the walk has passed the last node that uses it: each hook sees the whole gradient, once."""

    def __init__(self, order: list[Context], start: int) -> None:
        self.uses_left: dict[int, int] = {}  # id of a hooked leaf -> its uses in order[start:]
        for node in order[start:]:
            for t in node.inputs:
                if t.grad_fn is None and (t._grad_hooks or t._post_hooks):
                    self.uses_left[id(t)] = self.uses_left.get(id(t), 0) + 1
        self.sums: dict[int, tuple[Tensor, Tensor]] = {}

    def add(self, t: Tensor, g: Tensor) -> None:
        held = self.sums.get(id(t))
        self.sums[id(t)] = (t, g if held is None else _accumulate(held[1], g))

    def passed(self, node: Context, wanted: dict | None, found: list) -> None:
        for t in node.inputs:
            left = self.uses_left.get(id(t))
            if left is None:
                continue
            self.uses_left[id(t)] = left - 1
            if left == 1 and id(t) in self.sums:
                _deliver(*self.sums.pop(id(t)), wanted, found)


def _step(node: Context, grad: Any) -> tuple:
    """One node's backward: its inputs' gradients, un-broadcast and checked (None where unused)."""
    input_grads = node.fn.backward(node, grad)
    if type(input_grads) is not tuple:
        input_grads = tuple(input_grads) if isinstance(input_grads, list) else (input_grads,)
    inputs = node.inputs
    if len(input_grads) != len(inputs):
        raise GraphError(f"{node.name}.backward returned {len(input_grads)} gradients "
                         f"for {len(inputs)} inputs")
    for t, g in zip(inputs, input_grads):
        # Most gradients arrive ready: None, or a tensor of their input's shape and dtype.
        if g is not None and (not t.requires_grad or type(g) is not Tensor or g._data.shape != t._data.shape
                              or g._data.dtype is not t._data.dtype):
            # The rare case: un-broadcast, a dtype or type to fix, or an input with no gradient.
            input_grads = tuple([_fit_grad(node, i, t, g) if g is not None and t.requires_grad else None
                                 for i, (t, g) in enumerate(zip(inputs, input_grads))])
            break
    if _anomaly:
        _check_grads(node, input_grads)
    for hook in _step_hooks:
        hook(node, grad, input_grads)
    return input_grads


def _fit_grad(node: Context, i: int, t: Any, g: Any) -> Any:
    """Sum a broadcast gradient back to its input's shape, then check its shape and dtype."""
    if not isinstance(g, Tensor):
        g = Tensor(g, node.backend)
    have, want = g.data, t.data
    if have.shape != want.shape:
        try:
            g = sum_to(g, want.shape)
        except ShapeError:
            g = None
        if g is None or g.data.shape != want.shape:
            raise ShapeError(f"{node.name}.backward: gradient for input {i} has shape "
                             f"{shape_str(have.shape)}, expected {shape_str(want.shape)}") from None
        if node.unbroadcast is _NO_UNBROADCAST:
            node.unbroadcast = {}
        node.unbroadcast[i] = tuple(have.shape)  # what the pictures draw as a SumTo step
        have = g.data
    # A float32 input gets a float32 gradient even if backward mixed in float64 values.
    if have.dtype is not want.dtype and have.dtype != want.dtype and want.dtype.kind == "f":
        g = g.astype(want.dtype)
    return g


def _deliver(t: Any, g: Any, wanted: dict | None, found: list) -> None:
    """Hand a finished gradient to ``t``: into ``found`` for ag.grad, else into ``t.grad``
    (a leaf's hooks first, its post-accumulate hooks after)."""
    if t._grad_hooks and t.grad_fn is None:  # a non-leaf's hooks ran when its node was reached
        g = _run_grad_hooks(t, g)
    if wanted is not None:
        i = wanted.get(id(t))
        if i is not None:
            found[i] = _accumulate(found[i], g)
        return
    if not t.requires_grad:
        return
    if not _grad_enabled:
        if g.requires_grad:
            g = g.detach()  # the caller's own grad= tensor passed straight through
        if t.grad is None and _is_view_to_copy(g._data):
            g = Tensor(g._data.copy(), g._backend)
    t.grad = _accumulate(t.grad, g)
    if t._post_hooks:
        for hook in list(t._post_hooks):
            hook(t)


def _run_grad_hooks(t: Tensor, g: Tensor) -> Tensor:
    """``register_hook``'s hooks, in order; each may return a gradient to use instead."""
    for hook in list(t._grad_hooks):
        new = hook(g)
        if new is None:
            continue
        if not isinstance(new, Tensor) or new.shape != g.shape:
            what = shape_str(new.shape) if isinstance(new, Tensor) else type(new).__name__
            raise GraphError(f"register_hook: the hook {getattr(hook, '__name__', hook)!r} returned {what}; "
                             f"a hook returns None or a Tensor of the gradient's shape {shape_str(g.shape)}")
        g = new
    return g


def _is_view_to_copy(array: Any) -> bool:
    """True for a broadcast view (a sum's gradient), where many elements share one address:
    .grad must be safe to update in place. NumPy marks such views read-only; CuPy's flags
    have no 'writeable', so a zero stride tells. Other strided views (a channels-last
    gradient under its NCHW shape) are kept as they are: copying them costs a full pass."""
    if not getattr(array.flags, "writeable", True):
        return True
    return array.size > 1 and 0 in array.strides


def _accumulate(total: Any, g: Any) -> Any:
    """total + g; on plain arrays when no graph is being recorded (the usual backward)."""
    if total is None:
        return g
    if _grad_enabled:
        return total + g
    return Tensor(total._data + g._data, total._backend)


def backward(tensor: Any, grad: Any = None, retain_graph: bool | None = None,
             create_graph: bool = False) -> None:
    """``tensor.backward()``: fill ``.grad`` of the leaves that ``tensor`` depends on
    (``retain_graph`` defaults to ``create_graph``, as in PyTorch)."""
    if retain_graph is None:
        retain_graph = create_graph
    if not tensor.requires_grad:
        raise GraphError("backward(): this tensor does not require grad and has no grad_fn; "
                         "create the inputs with requires_grad=True")
    grad = _initial_grad(tensor, grad)
    run_backward([tensor], [grad], retain_graph=retain_graph, create_graph=create_graph)


def _initial_grad(tensor: Any, grad: Any) -> Any:
    if grad is None:
        if tensor.data.size != 1:
            raise GraphError(
                f"backward(): the tensor has shape {shape_str(tensor.shape)}, not a scalar; "
                "reduce it first (e.g. loss.sum() or loss.mean()) or pass "
                "grad= a tensor of that shape")
        return Tensor(tensor._backend.xp.ones_like(tensor.data), tensor._backend)
    if not isinstance(grad, Tensor):
        grad = Tensor(tensor._backend.asarray(grad, dtype=tensor.data.dtype), tensor._backend)
    if grad.shape != tensor.shape:
        raise ShapeError(f"backward(): grad has shape {shape_str(grad.shape)}, "
                         f"the tensor {shape_str(tensor.shape)}")
    return grad


def grad(outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple:
    """Gradients of ``outputs`` with respect to ``inputs``, returned, not stored in ``.grad``."""
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    grads = [_initial_grad(o, g) for o, g in zip(outputs, grad_outputs)]
    if retain_graph is None:
        retain_graph = create_graph
    found = run_backward(outputs, grads, retain_graph=retain_graph,
                         create_graph=create_graph, inputs=inputs)
    for i, g in enumerate(found):
        if g is None and not allow_unused:
            raise GraphError(f"grad(): input {i} was not used to compute the outputs; "
                             "pass allow_unused=True to get None for it")
    return tuple(found)
