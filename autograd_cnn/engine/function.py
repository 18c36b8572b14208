"""``Function`` (an op: forward on backend arrays, backward in differentiable ops), its
``Context`` (what forward leaves for backward, and the graph node: ``tensor.grad_fn``), and
``apply``, which runs forward and records the node.

An op makes one output or several: ``forward`` returns an array, or a tuple of arrays; then
``apply`` returns a tuple of tensors that share one node (each knows its place, ``output_nr``),
and ``backward(ctx, *grads)`` gets one gradient per output.
"""
from __future__ import annotations

import inspect
import math
import weakref
from collections.abc import Sequence
from typing import Any

from ..errors import AnomalyError, ArgumentTypeError, AutogradError, BackendError, GraphError, ShapeError, shape_str
from ..tensor import Tensor, as_op_inputs
from .anomaly import watch, where
from .modes import current

GRAD_OUT = "∂L/∂y"  # how a rule writes the gradient that arrives from above

#: A node keeps the input tensors it reads, for the pictures and for ``graph_of``; but an input
#: that another op made, of this many bytes or more, which neither this op nor its maker saved
#: for backward, it holds only by a weak reference (``UnkeptTensor``): as in PyTorch, its memory
#: goes as soon as nothing else holds it (a training step's conv outputs under their ReLUs).
#: ``keep_values()`` keeps them all, for a picture of large tensors.
KEEP_VALUES_BELOW = 1 << 20

_NEEDS: dict[tuple, tuple] = {}  # the needs_input_grad tuples, shared by the nodes
_NO_UNBROADCAST: dict = {}  # shared by the nodes that un-broadcast nothing (never written to)


class Context:
    """What forward leaves for backward. It is also the graph node: ``tensor.grad_fn``.

    What a reader of the graph may use (``graph_of`` gives the nodes in backward's order):

    - ``name`` (the op, ``"Conv2d"``), ``fn`` (its ``Function`` class), ``params`` (the op's
      settings, as given to ``apply``: stride, axis, ...), ``scope`` (the module path);
    - ``inputs``, the input tensors (after a backward without ``retain_graph``, a
      ``ReleasedTensor`` in place of each one another node made; from forward on, an
      ``UnkeptTensor`` for a large one that nothing saved: ``KEEP_VALUES_BELOW``), and
      ``needs_input_grad``;
    - ``n_outputs``, how many tensors the op made (``output_specs``: their shapes and dtypes,
      where there are several);
    - ``saved``, the values forward saved for backward (tensors of the graph where they are
      one, other arrays as they are), or None once a backward freed them (``freed``);
    - ``unbroadcast``: for each input whose gradient the engine summed back to the input's
      broadcast shape, ``{input index: the gradient's shape before}``; filled in by backward;
    - ``rule_lines()``, the derivative rule of each input, as ``fn.rules`` writes it.

    ``saved_tensors`` is backward's own view of ``saved`` (tensors, so that a
    ``create_graph=True`` backward can differentiate through them).

    A node holds no reference to its outputs: each output holds the node (``grad_fn``), and a
    link back would be a cycle, or one more object per op (a weak reference) for the cycle
    collector to scan. Backward finds each node's outputs on the way, as the inputs of the
    nodes they fed, and where they are needed sets ``output`` (a tuple, for several) for the
    time that node's backward runs.
    """

    # detect_anomaly's notes, set on the nodes it watches; the class defaults cost the others nothing.
    created_at: str = "a line outside detect_anomaly"
    saved_copies: list | None = None

    # The engine's own fields live in slots (fast, and a backward that frees saved values
    # does not grow each node's __dict__); an op's own attributes (ctx.in_shape) go in __dict__.
    __slots__ = ("fn", "backend", "params", "scope", "records", "inputs", "needs_input_grad", "_saved",
                 "output", "freed", "out_backend", "unbroadcast", "versions", "n_outputs", "__dict__",
                 "__weakref__")

    # The outputs' (shape, dtype) where there are several: a class default, which an op with
    # several outputs overrides on its own node.
    output_specs: tuple | None = None

    def __init__(self, fn: type, backend: Any, params: dict | None = None, scope: str = "") -> None:
        self.fn = fn
        self.backend = backend
        self.params = params if params is not None else {}
        self.scope = scope  # apply passes the module path of the forward that runs
        self.records = False  # set by apply before forward: will backward run through this node?
        self.inputs: tuple = ()  # apply fills these three when it records the node
        self.needs_input_grad: tuple = ()
        self.output: Any = None  # the output tensor (a tuple, for several) while backward runs here
        self._saved: tuple | None = ()
        self.freed = False
        self.out_backend: Any = None  # an op whose output lives elsewhere (ToBackend) sets this
        self.unbroadcast: dict[int, tuple] = _NO_UNBROADCAST  # replaced by the first entry
        self.versions: tuple | None = None  # the inputs' versions when forward saved values (None: all 0)
        self.n_outputs = 1  # how many tensors the op made

    @property
    def xp(self) -> Any:
        return self.backend.xp

    @property
    def name(self) -> str:
        return self.fn.__name__

    def save_for_backward(self, *values: Any) -> None:
        """Keep arrays (inputs, the outputs, or others) for backward."""
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
                    f"{self.name}{where(self)}: {who} of shape {shape_str(t.shape)}, which {self.name} saved for "
                    f"backward, was changed in place after the forward pass (version {then} then, "
                    f"{t._version} now), so its gradient would be computed with the new values. Compute the "
                    "forward pass again after the change (call optimizer.step() after loss.backward(), not "
                    "between the forward pass and it), or change a copy.")
        if self.saved_copies is not None:
            for k, (value, copy) in enumerate(zip(self._saved, self.saved_copies)):
                if copy is not None and not self.xp.array_equal(value, copy, equal_nan=True):
                    raise AnomalyError(
                        f"{self.name}{where(self)}: saved value {k} of shape {shape_str(value.shape)} changed "
                        f"after the forward pass, behind the library's back (a write into .data's array?); "
                        f"the op was created at {self.created_at}. Change a copy instead.")

    @property
    def saved(self) -> list | None:
        """The values forward saved, each as the graph's tensor that holds it where there is one
        (an input, or an output while backward runs here), else as it is; None once freed."""
        if self.freed or self._saved is None:
            return None
        return self.saved_sources(self.output)

    def rule_lines(self) -> list[str]:
        """The derivative rule of each input that needs a gradient (``fn.rules``)."""
        return self.fn.rule_lines(len(self.inputs), self.needs_input_grad)

    def saved_sources(self, output: Any = None) -> list:
        """The saved values, each as the graph's tensor that holds it (an input, or ``output``
        where given: a tensor, or a tuple of them for several outputs), so that a create_graph
        backward differentiates through it; other values (a mask, an index, an output's array
        when no ``output`` is given) as they are."""
        if type(output) is tuple:  # several outputs: each is a holder, as the inputs are
            holders = [t for t in output if t is not None] + list(self.inputs)
            return [next((t for t in holders if value is t._data), value) for value in self._saved]
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
                key = t.grad_fn if not t._output_nr else (t.grad_fn, t._output_nr)
                stand_in = stand_ins.get(key)
                if stand_in is None:
                    stand_in = stand_ins[key] = ReleasedTensor(t)
                t, changed = stand_in, True
            inputs.append(t)
        if changed:
            self.inputs = tuple(inputs)

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"


class ReleasedTensor:
    """A tensor of a graph after a backward that did not retain it: the node that made it (and
    which of its outputs it was), its shape and dtype, but no values (``numpy()`` is None)."""

    __slots__ = ("grad_fn", "shape", "dtype", "_output_nr")
    requires_grad = True
    gone = "(freed by backward)"  # what a picture shows for its values
    name = None  # a named tensor is never released
    _version = 0
    grad = None
    _retains_grad = False
    _grad_hooks = _post_hooks = None

    def __init__(self, tensor: Any) -> None:
        self.grad_fn = tensor.grad_fn
        self.shape = tensor._data.shape
        self.dtype = tensor._data.dtype
        self._output_nr = tensor._output_nr

    @property
    def output_nr(self) -> int:
        return self._output_nr

    @property
    def data(self) -> ReleasedTensor:
        """Its shape and dtype alone: what a second backward through a node that saved
        nothing (an Add) checks gradients against; a node that saved values says they are freed."""
        return self

    _data = data  # the engine reads a tensor's array by this name on its hot paths

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numpy(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<released tensor of shape {shape_str(self.shape)}, made by {self.grad_fn.name}>"


class UnkeptTensor(ReleasedTensor):
    """An input that a node does not keep (``KEEP_VALUES_BELOW``): the node that made it, its
    shape and dtype, and a weak reference to the tensor, which backward and the pictures use
    while the program still holds it (for ``retain_grad()`` and hooks set after the fact)."""

    __slots__ = ("_ref",)
    gone = "(not kept: a large intermediate no op saved; ag.keep_values() keeps it)"

    def __init__(self, tensor: Any) -> None:
        super().__init__(tensor)
        self._ref = weakref.ref(tensor)

    def live(self) -> Any:
        """The tensor itself while something still holds it, else this stand-in."""
        tensor = self._ref()
        return self if tensor is None else tensor

    def __repr__(self) -> str:
        return f"<unkept tensor of shape {shape_str(self.shape)}, made by {self.grad_fn.name}>"


def _unkept(ctx: Context, inputs: tuple) -> tuple:
    """``inputs`` with each large one that another op made, and that neither ``ctx`` nor its maker
    saved, as an ``UnkeptTensor`` (a named tensor, or one with hooks or ``retain_grad()``, stays)."""
    out = []
    for t in inputs:
        maker = t.grad_fn
        if (maker is not None and t._data.nbytes >= KEEP_VALUES_BELOW and t.name is None and not t._retains_grad
                and not t._grad_hooks and not t._post_hooks
                and not any(v is t._data for v in ctx._saved or ())
                and not any(v is t._data for v in maker._saved or ())):
            t = UnkeptTensor(t)
        out.append(t)
    return tuple(out)


class Function:
    """An op: ``forward(ctx, *arrays, **params)`` and ``backward(ctx, *grads) -> grads``.

    ``forward`` returns an array, or a tuple of arrays for an op with several outputs; backward
    then gets one gradient per output, zeros of that output's shape for an output no path used
    (None instead where the op sets ``materialize_grads = False``, to skip that work itself),
    and returns one gradient (or None) per tensor input.

    ``rules`` writes out backward's derivative for the pictures, one line per tensor input in
    the order of forward's arguments (one line alone serves every input: Concat's). ``y`` is the
    op's output and ``∂L/∂y`` the gradient arriving from above. ``saved_names`` names what forward
    saves, in ``save_for_backward``'s order ("the max-pool mask"); where it names nothing, the
    pictures call a saved input by its argument and the saved output ``y``.
    """

    # False for ops whose output carries no gradient (comparisons, argmax, one-hot).
    differentiable = True
    # For several outputs: an output no path used sends zeros of its shape (True) or None (False).
    materialize_grads = True
    # True for an op whose inputs a reader of the graph needs whole after forward, whatever their
    # size (Softmax: a loss takes the logits under it); see KEEP_VALUES_BELOW.
    keeps_inputs = False
    rules: tuple[str, ...] = ()
    saved_names: tuple[str, ...] = ()

    @staticmethod
    def forward(ctx: Context, *args: Any, **params: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, *grads: Any) -> Any:
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
        """Run ``forward`` on the inputs' arrays; record the node when a gradient is wanted.
        Returns a tensor, or a tuple of tensors where forward made several outputs."""
        backend = None
        arrays, needs = [], []
        for t in inputs:
            if type(t) is not Tensor and not isinstance(t, Tensor):
                # Numbers and arrays become constant tensors, then the op runs on those.
                return cls.apply(*as_op_inputs(cls.__name__, inputs), **params)
            if t._backend is not backend:
                if backend is None:
                    backend = t._backend
                else:  # numpy and numba hold the same arrays: they mix (Backend.mixed_with)
                    mixed = backend.mixed_with(t._backend)
                    if mixed is None:
                        raise _two_backends(cls.__name__, backend, t._backend)
                    backend = mixed
            arrays.append(t._data)
            needs.append(t.requires_grad)
        if backend is None:
            raise GraphError(f"{cls.__name__}: needs at least one tensor input")
        modes = current()
        ctx = Context(cls, backend, params, modes.scope)
        # Known before forward, so a forward can skip work that only backward needs.
        ctx.records = requires_grad = True in needs and modes.grad and cls.differentiable
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
        if type(out) is tuple:
            return _several_outputs(ctx, inputs, needs, out, backend, requires_grad, modes.watch)
        result = Tensor(out, ctx.out_backend or backend, requires_grad)
        if requires_grad:  # _record, written out: this is the path every op takes
            ctx.inputs = inputs
            needs = tuple(needs)
            # One shared tuple per pattern: a node's own would be one more object to scan.
            ctx.needs_input_grad = _NEEDS.setdefault(needs, needs) if len(needs) <= 4 else needs
            if ctx._saved:
                for t in inputs:  # most inputs were never changed in place: None says all at 0
                    if t._version:
                        ctx.versions = tuple([t._version for t in inputs])
                        break
            if not (modes.keep_values or cls.keeps_inputs):
                for t in inputs:  # most inputs are small, or leaves: kept as they are
                    if t.grad_fn is not None and t._data.nbytes >= KEEP_VALUES_BELOW:
                        ctx.inputs = _unkept(ctx, inputs)
                        break
            result.grad_fn = ctx
        if modes.watch:
            watch(ctx, inputs, (out,), requires_grad)
        return result


def _record(ctx: Context, inputs: tuple, needs: list) -> None:
    """Fill in a node that backward will run through: its inputs, which of them need a
    gradient, and their versions where forward saved values and an input was changed before."""
    ctx.inputs = inputs
    needs = tuple(needs)
    ctx.needs_input_grad = _NEEDS.setdefault(needs, needs) if len(needs) <= 4 else needs
    if ctx._saved:
        for t in inputs:  # most inputs were never changed in place: None says all at 0
            if t._version:
                ctx.versions = tuple([t._version for t in inputs])
                break


def _several_outputs(ctx: Context, inputs: tuple, needs: list, out: tuple, backend: Any, requires_grad: bool,
                     watching: bool) -> tuple:
    """apply's end for an op whose forward returned a tuple: one tensor per array, each knowing
    its place (``output_nr``), all made by the one node."""
    out_backend = ctx.out_backend or backend
    result = tuple([Tensor(o, out_backend, requires_grad) for o in out])
    for i, r in enumerate(result):
        r._output_nr = i
    ctx.n_outputs = len(out)
    ctx.output_specs = tuple([(o.shape, o.dtype) for o in out])
    if requires_grad:
        _record(ctx, inputs, needs)
        if not (current().keep_values or ctx.fn.keeps_inputs):
            ctx.inputs = _unkept(ctx, inputs)
        for r in result:
            r.grad_fn = ctx
    if watching:
        watch(ctx, inputs, out, requires_grad)
    return result


def _two_backends(op: str, first: Any, second: Any) -> BackendError:
    return BackendError(
        f"{op}: inputs live on two backends, {first.name} and {second.name}. Move one with "
        f".to({first.name!r}) or .to({second.name!r}); nothing is copied behind your back.")
