"""The backward walk: each node's backward in reverse topological order, without recursion;
gradients summed where a tensor fed several ops, per output where a node made several; hooks;
and the freeing of what a node saved once it has run. Also ``backward``, ``grad``, the step
hooks (``register_step_hook``) and ``queue_callback``.
"""
from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import GraphError, ShapeError, shape_str
from ..hooks import RemovableHandle
from ..tensor import Tensor
from .anomaly import check_grads
from .function import Context, ReleasedTensor, UnkeptTensor
from .graph import topological_order
from .modes import MODES, current, set_grad_enabled, set_mode
from .unbroadcast import sum_to


class _Walks(threading.local):
    """Per thread (two threads may each run a backward): one list per backward walk in progress
    (a hook may run a backward of its own), the callables queue_callback added, run when that
    walk ends; and the step hooks, told of every backward step of this thread's walks, as
    (node, grad_output, input_grads), by handle (grad_output is a tuple for a node with several
    outputs)."""

    def __init__(self) -> None:
        self.callbacks: list[list[Callable[[], None]]] = []
        self.step_hooks: dict[RemovableHandle, Callable[[Context, Any, tuple], None]] = {}


_walks = _Walks()


def register_step_hook(fn: Callable[[Context, Any, tuple], None]) -> RemovableHandle:
    """Call ``fn(node, grad_output, input_grads)`` after each node's backward, in every backward this
    thread runs until the handle's ``remove()`` (the step-by-step pictures listen here; a backward
    in another thread does not call it). ``grad_output`` is the tuple of the gradients of each
    output for a node with several."""
    return RemovableHandle(_walks.step_hooks, fn)


def step_hooks() -> dict:
    """This thread's step hooks, by handle (``register_step_hook``)."""
    return _walks.step_hooks


def queue_callback(fn: Callable[[], None]) -> bool:
    """Run ``fn()`` once when the backward now running ends: after every gradient and hook, before
    ``backward()`` returns (data-parallel training waits for its last all-reduce there).

    Call it from a hook during backward. Callbacks run in the order queued; one queued by a
    callback runs too. A callable already queued for this backward is not queued again: the
    return value says whether this call queued it. A backward that raises runs none of them.
    """
    if not _walks.callbacks:
        raise GraphError("queue_callback: no backward is running; call it from a hook that runs "
                         "during backward() (register_post_accumulate_grad_hook, register_hook)")
    queued = _walks.callbacks[-1]
    if fn in queued:
        return False
    queued.append(fn)
    return True


def run_backward(outputs: Sequence[Any], grads: Sequence[Any], retain_graph: bool = False,
                 create_graph: bool = False, inputs: Sequence[Any] | None = None) -> list | None:
    """Propagate ``grads`` from ``outputs`` back through the graph.

    With ``inputs`` None, gradients accumulate into ``.grad`` of leaves (and of tensors
    that called ``retain_grad()``). Otherwise the gradients of ``inputs`` are returned
    and no ``.grad`` is touched (``ag.grad``). What hooks gave to ``queue_callback`` runs last.
    """
    callbacks: list[Callable[[], None]] = []
    _walks.callbacks.append(callbacks)
    try:
        found = _walk(outputs, grads, retain_graph, create_graph, inputs)
        with set_grad_enabled(create_graph):
            for fn in callbacks:  # the list may grow while it runs: a callback may queue another
                fn()
    finally:
        _walks.callbacks.pop()
    return found


class PerOutput:
    """The gradients arriving at a node with several outputs, one sum per output, and (where the
    walk needs them) the output tensors they arrived through."""

    __slots__ = ("grads", "tensors", "record")

    def __init__(self, count: int, record: bool) -> None:
        self.grads: list = [None] * count
        self.tensors: list | None = None
        self.record = record  # sums recorded as a graph (create_graph)

    def add(self, t: Any, g: Any, keep: Any) -> PerOutput:
        i = t._output_nr
        held = self.grads[i]
        self.grads[i] = g if held is None else accumulate(held, g, self.record)
        if keep:
            if self.tensors is None:
                self.tensors = [None] * len(self.grads)
            self.tensors[i] = t
        return self

    def finish(self, node: Context, wanted: dict | None, found: list) -> tuple:
        """The gradient of each output, its hooks run and delivered where asked; zeros (or None,
        where the op takes None) for an output no path used. Sets ``node.output``."""
        grads = self.grads
        if self.tensors is not None:
            for i, t in enumerate(self.tensors):
                if t is None:
                    continue
                if t._grad_hooks:
                    grads[i] = run_grad_hooks(t, grads[i])
                if t._retains_grad or (wanted is not None and id(t) in wanted):
                    deliver(t, grads[i], wanted, found, self.record)
            node.output = tuple(self.tensors)
        if node.fn.materialize_grads and any(g is None for g in grads):
            backend = node.out_backend or node.backend
            grads = [Tensor(backend.xp.zeros(shape, dtype=dtype), backend) if g is None else g
                     for g, (shape, dtype) in zip(grads, node.output_specs)]
        return tuple(grads)


def _walk(outputs: Sequence[Any], grads: Sequence[Any], retain_graph: bool, create_graph: bool,
          inputs: Sequence[Any] | None) -> list | None:
    """The walk itself: each node's backward in reverse topological order, without recursion."""
    wanted = {id(t): i for i, t in enumerate(inputs)} if inputs is not None else None
    found: list = [None] * len(inputs) if inputs is not None else []
    # node -> the gradient of its output, summed so far (a PerOutput for a node with several)
    pending: dict[Context, Any] = {}
    # node -> its output tensor, as met on the way: for retain_grad(), its hooks, ag.grad's
    # inputs, and a create_graph backward to differentiate through a saved output. Kept only
    # then: it would hold an output's memory until its node had run.
    made: dict[Context, Any] = {}
    keep_outputs = create_graph or wanted is not None
    stand_ins: dict[Any, ReleasedTensor] = {}  # node (and output) -> its released output (no retain_graph)
    roots = []
    modes = current()  # the caller's; the walk records (create_graph) or not, and checks (anomaly) or not
    record, anomaly = create_graph, modes.anomaly
    for out, g in zip(outputs, grads):
        node = out.grad_fn
        if node is None:
            deliver(out, g, wanted, found, modes.grad)
            continue
        if node.n_outputs != 1:
            pending.setdefault(node, PerOutput(node.n_outputs, record)).add(out, g, True)
        else:
            pending[node] = accumulate(pending.get(node), g, modes.grad)
            made[node] = out
        roots.append(node)

    MODES.set(modes.replace("grad", create_graph).replace("walking", True))
    # The walk makes no reference cycles, yet its many short-lived gradients and nodes set off
    # the cycle collector, whose full passes scan the whole heap (slow beside a large library's
    # objects). Paused for the walk only; the caller's setting comes back in `finally`.
    collecting = gc.isenabled()
    gc.disable()
    try:
        order = topological_order(roots)
        held: _HeldLeaves | None = None  # made once a leaf with hooks gets a gradient
        for k, node in enumerate(order):
            grad = pending.pop(node, None)
            if grad is None:
                if held is not None:
                    held.passed(node, wanted, found, record)
                continue
            if type(grad) is PerOutput:
                grad = grad.finish(node, wanted, found)
            else:
                node.output = output = made.pop(node, None)
                if output is not None:
                    if output._grad_hooks:
                        grad = run_grad_hooks(output, grad)
                    if output._retains_grad or (wanted is not None and id(output) in wanted):
                        deliver(output, grad, wanted, found, record)
            try:
                input_grads = _step(node, grad, anomaly)
            finally:
                node.output = None  # held only for this step: the output holds the node
            for t, g in zip(node.inputs, input_grads):
                if g is None:
                    continue
                if type(t) is UnkeptTensor:  # the tensor itself, for its hooks and retain_grad(), if it lives
                    t = t.live()
                parent = t.grad_fn
                if parent is None:
                    if t._grad_hooks or t._post_hooks:
                        held = held or _HeldLeaves(order, k)
                        held.add(t, g, record)
                    else:
                        deliver(t, g, wanted, found, record)
                elif parent in pending:  # a tensor that fed several ops: sum its gradients
                    sums = pending[parent]
                    if type(sums) is PerOutput:
                        sums.add(t, g, keep_outputs or t._retains_grad or t._grad_hooks)
                    else:
                        pending[parent] = accumulate(sums, g, record)
                elif parent.n_outputs == 1:
                    pending[parent] = g
                    if keep_outputs or t._retains_grad or t._grad_hooks:
                        made[parent] = t
                else:
                    pending[parent] = PerOutput(parent.n_outputs, record).add(
                        t, g, keep_outputs or t._retains_grad or t._grad_hooks)
            if held is not None:
                held.passed(node, wanted, found, record)
            if not retain_graph:
                node.release(stand_ins)
    finally:
        set_mode("walking", modes.walking)
        set_mode("grad", modes.grad)
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

    def add(self, t: Tensor, g: Tensor, record: bool) -> None:
        held = self.sums.get(id(t))
        self.sums[id(t)] = (t, g if held is None else accumulate(held[1], g, record))

    def passed(self, node: Context, wanted: dict | None, found: list, record: bool) -> None:
        for t in node.inputs:
            left = self.uses_left.get(id(t))
            if left is None:
                continue
            self.uses_left[id(t)] = left - 1
            if left == 1 and id(t) in self.sums:
                deliver(*self.sums.pop(id(t)), wanted, found, record)


def _step(node: Context, grad: Any, anomaly: bool) -> tuple:
    """One node's backward: its inputs' gradients, un-broadcast and checked (None where unused)."""
    input_grads = node.fn.backward(node, *grad) if type(grad) is tuple else node.fn.backward(node, grad)
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
    if anomaly:
        check_grads(node, input_grads)
    hooks = _walks.step_hooks
    if hooks:
        for hook in list(hooks.values()):
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
        if not node.unbroadcast:
            node.unbroadcast = {}
        node.unbroadcast[i] = tuple(have.shape)  # what the pictures draw as a SumTo step
        have = g.data
    # A float32 input gets a float32 gradient even if backward mixed in float64 values.
    if have.dtype is not want.dtype and have.dtype != want.dtype and want.dtype.kind == "f":
        g = g.astype(want.dtype)
    return g


def deliver(t: Any, g: Any, wanted: dict | None, found: list, record: bool) -> None:
    """Hand a finished gradient to ``t``: into ``found`` for ag.grad, else into ``t.grad``
    (a leaf's hooks first, its post-accumulate hooks after); ``record``: the walk records a graph."""
    if t._grad_hooks and t.grad_fn is None:  # a non-leaf's hooks ran when its node was reached
        g = run_grad_hooks(t, g)
    if wanted is not None:
        i = wanted.get(id(t))
        if i is not None:
            found[i] = accumulate(found[i], g, record)
        return
    if not t.requires_grad:
        return
    if not record:
        if g.requires_grad:
            g = g.detach()  # the caller's own grad= tensor passed straight through
        if t.grad is None and _is_view_to_copy(g._data):
            g = Tensor(g._data.copy(), g._backend)
    t.grad = accumulate(t.grad, g, record)
    if t._post_hooks:
        for hook in list(t._post_hooks.values()):
            hook(t)


def run_grad_hooks(t: Tensor, g: Tensor) -> Tensor:
    """``register_hook``'s hooks, in order; each may return a gradient to use instead."""
    for hook in list(t._grad_hooks.values()):
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


def accumulate(total: Any, g: Any, record: bool) -> Any:
    """total + g; on plain arrays when no graph is being recorded (the usual backward)."""
    if total is None:
        return g
    if record:
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
