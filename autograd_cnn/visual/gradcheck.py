"""Check your own op, in a picture: ``gradcheck_graph(fn, inputs)`` runs the numerical gradient
check node by node and colours each backward step by how well its analytic gradients (what the
op's ``backward`` returned) agree with central differences of its own ``forward``, naming the
worst element. A student whose ``backward`` is wrong sees which node it is.

For each step, with ∂L/∂y the gradient that arrived there, the numerical gradient of input x is
(f(x + ε) − f(x − ε)) / 2ε element by element, with f(x) = Σ forward(x, …) · ∂L/∂y, run in float64.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import autograd
from ..creation import tensor
from ..errors import GraphError
from ..tensor import Tensor
from .dot import Drawing, Picture
from .pictures import new_picture
from .trace import trace

OK_FILL, BAD_FILL, SKIP_FILL = "#bbf7d0", "#fca5a5", "#f3f4f6"
MAX_ELEMENTS = 4096  # per input: a bigger one is checked on this many elements, spread evenly


@dataclass
class NodeCheck:
    """The check of one backward step: per input, the worst element and both values there."""

    op: str
    ok: bool
    worst: str = ""  # "input a at (1, 2): analytic 12, numerical 3"
    error: float = 0.0  # the largest |analytic − numerical| / (atol + rtol |numerical|)


def gradcheck_graph(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6, atol: float = 1e-5,
                    rtol: float = 1e-3, rankdir: str = "TB") -> Picture:
    """The backward graph of ``fn(*inputs)`` with each step green where its gradients agree with
    the numerical ones and red where they do not (its label names the worst element). The
    picture's ``checks`` maps each step's node id to its ``NodeCheck``."""
    leaves = [tensor(np.asarray(x.numpy() if isinstance(x, Tensor) else x, dtype=np.float64), requires_grad=True,
                     name=getattr(x, "name", None))
              if np.asarray(x.numpy() if isinstance(x, Tensor) else x).dtype.kind == "f" else x for x in inputs]
    with autograd.keep_values():  # each step's check reruns it from its inputs' values
        out = fn(*leaves)
    if not isinstance(out, Tensor) or out.grad_fn is None:
        raise GraphError("gradcheck_graph: fn must return a Tensor computed from the float inputs, "
                         f"got {type(out).__name__} without a graph")
    loss = out if out.data.size == 1 else (out * np.random.default_rng(1234).standard_normal(out.shape)).sum()
    seen: list[tuple[Any, np.ndarray, tuple]] = []
    with autograd.register_step_hook(lambda node, g, grads: seen.append((node, g, grads))):
        loss.backward(retain_graph=True)
    tr = trace(loss)
    drawing = Drawing(tr)
    checks: dict[str, NodeCheck] = {}
    for node, g, grads in seen:
        op = tr.op_of(node)
        if op is not None:
            checks["b" + op.id] = check_node(node, g, grads, eps, atol, rtol)
    drawing.marks = {key: _mark(c) for key, c in checks.items()}
    bad = [c for c in checks.values() if not c.ok]
    caption = (f"gradcheck: all {len(checks)} backward steps agree with central differences" if not bad else
               f"gradcheck: {len(bad)} of {len(checks)} backward steps disagree; worst: {bad[0].op}, {bad[0].worst}")
    g = new_picture("gradcheck", rankdir, caption, drawing)
    drawing.backward(g)
    g.checks = checks
    return g


def check_node(node: Any, grad_output: Any, grads: tuple, eps: float, atol: float, rtol: float) -> NodeCheck:
    """Compare the gradients one step sent with central differences of its op's forward."""
    outs = grad_output if isinstance(grad_output, tuple) else (grad_output,)  # one per output
    gy = tuple(None if g is None else np.asarray(g.numpy(), dtype=np.float64) for g in outs)
    names = node.fn.input_names(len(node.inputs))
    worst, ok, worst_text = 0.0, True, ""
    for i, (x, g) in enumerate(zip(node.inputs, grads)):
        if g is None or not node.needs_input_grad[i] or x.data.dtype.kind != "f":
            continue
        analytic = np.asarray(g.numpy(), dtype=np.float64)
        numeric, picked = numerical(node, i, gy, eps)
        a, n = analytic.reshape(-1)[picked], numeric
        score = np.abs(a - n) / (atol + rtol * np.abs(n))
        k = int(np.argmax(score)) if score.size else 0
        if score.size and score[k] > worst:
            worst = float(score[k])
            where = np.unravel_index(int(picked[k]), analytic.shape) if analytic.ndim else ()
            worst_text = (f"∂L/∂{names[i]} at {tuple(int(j) for j in where)}: analytic {a[k]:.6g}, "
                          f"numerical {n[k]:.6g}")
        ok = ok and bool(np.all(score <= 1))
    return NodeCheck(node.name, ok, worst_text, worst)


def numerical(node: Any, i: int, gy: tuple, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of Σ forward(...) · gy with respect to input ``i`` of ``node`` (summed
    over its outputs, where it has several; an unused one's gradient None), at the flat
    positions it returns (every element, or MAX_ELEMENTS of them spread evenly)."""
    x = np.array(node.inputs[i].data, dtype=np.float64)
    flat = x.reshape(-1)
    picked = np.unique(np.linspace(0, flat.size - 1, min(flat.size, MAX_ELEMENTS)).astype(int))

    def f() -> float:
        args = [tensor(x) if j == i else t for j, t in enumerate(node.inputs)]
        with autograd.no_grad():
            y = node.fn.apply(*args, **node.params)
        ys = y if isinstance(y, tuple) else (y,)
        return float(sum((np.asarray(out.numpy(), dtype=np.float64) * g).sum()
                         for out, g in zip(ys, gy) if g is not None))

    out = np.zeros(picked.size)
    for k, p in enumerate(picked):
        old = flat[p]
        flat[p] = old + eps
        up = f()
        flat[p] = old - eps
        down = f()
        flat[p] = old
        out[k] = (up - down) / (2 * eps)
    return out, picked


def _mark(check: NodeCheck) -> tuple[str, list[tuple[str, str]]]:
    """The fill colour and the extra label lines of a checked step."""
    if check.ok:
        return OK_FILL, [("#166534", f"gradcheck ✓ (worst {check.error:.2g} of the tolerance)")]
    return BAD_FILL, [("#991b1b", "gradcheck ✗ backward disagrees"), ("#991b1b", check.worst)]
