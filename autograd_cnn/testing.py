"""Gradient checking, shipped so that users can check their own ops.

``gradcheck`` compares the engine's gradients with central differences in float64;
``gradgradcheck`` does the same for the gradients of the gradients (create_graph=True).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import autograd
from .autograd import set_grad_enabled
from .errors import AutogradError
from .tensor import Tensor


class GradcheckError(AutogradError, AssertionError):
    """Analytic and numerical gradients disagree."""


def _checked(inputs: Sequence[Any]) -> list:
    """Float inputs as float64 leaves; other inputs (labels, masks) pass through."""
    out = []
    for x in inputs:
        if isinstance(x, Tensor) and x.dtype.kind == "f":
            t = Tensor(x.data.astype("float64"), x.backend_object, requires_grad=x.requires_grad)
            out.append(t)
        else:
            out.append(x)
    return out


def _project(y: Any, weights: dict) -> Tensor:
    """A function's output reduced to a scalar with fixed random weights (a random projection);
    a tuple of outputs (an op with several) to the sum of their projections."""
    if isinstance(y, (tuple, list)) and y and all(isinstance(t, Tensor) for t in y):
        total = None
        for k, t in enumerate(y):
            term = _project(t, weights.setdefault(k, {}))
            total = term if total is None else total + term
        return total
    if not isinstance(y, Tensor):
        raise GradcheckError(f"gradcheck: the function returned {type(y).__name__}, not a Tensor "
                             "or a tuple of tensors")
    if y.data.size == 1:
        return y.reshape(())
    if "w" not in weights:
        rng = np.random.default_rng(1234 + len(weights))
        host = rng.standard_normal(y.shape)
        weights["w"] = Tensor(y.backend_object.from_host(host.astype(y.dtype)), y.backend_object)
    return (y * weights["w"]).sum()


def numerical_grad(f: Callable[[], float], x: Tensor, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to each element of ``x``."""
    data = x.data
    grad = np.zeros(data.shape, dtype=np.float64)
    flat = data.reshape(-1)  # a view: writing to it perturbs x in place
    for i in range(flat.size):
        old = flat[i].item()
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        grad.reshape(-1)[i] = (up - down) / (2 * eps)
    return grad


def _name(fn: Callable, output: Any) -> str:
    name = getattr(fn, "__name__", type(fn).__name__)
    node = getattr(output[0] if isinstance(output, (tuple, list)) and output else output, "grad_fn", None)
    return f"{name} (output made by {node.name})" if node is not None else name


def gradcheck(fn: Callable, inputs: Sequence[Any], eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, _record: bool = False) -> bool:
    """True when ``fn``'s analytic gradients match central differences for every input.

    Inputs that are floating-point tensors with ``requires_grad=True`` are checked, in
    float64. On a mismatch it raises, naming the op, the argument, the worst element and
    both values.
    """
    inputs = _checked(inputs)
    targets = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not targets:
        raise GradcheckError("gradcheck: no input requires grad; pass tensors made with requires_grad=True")
    weights: dict = {}
    output = fn(*inputs)
    loss = _project(output, weights)
    name = _name(fn, output)
    analytic = autograd.grad(loss, [inputs[i] for i in targets], allow_unused=True)

    def value() -> float:
        # gradgradcheck's function takes gradients itself, so it needs the graph on.
        with set_grad_enabled(_record):
            return float(_project(fn(*inputs), weights).item())

    for k, i in enumerate(targets):
        x = inputs[i]
        numeric = numerical_grad(value, x, eps)
        got = np.zeros(x.shape) if analytic[k] is None else analytic[k].numpy().astype(np.float64)
        _compare(name, f"input {i}", got, numeric, atol, rtol)
    return True


def _compare(name: str, what: str, analytic: np.ndarray, numeric: np.ndarray,
             atol: float, rtol: float) -> None:
    if analytic.shape != numeric.shape:
        raise GradcheckError(f"gradcheck {name}: gradient of {what} has shape {analytic.shape}, "
                             f"expected {numeric.shape}")
    excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    if excess.size and (excess.max() > 0 or not np.all(np.isfinite(analytic))):
        worst = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(excess), excess, np.inf))),
                                 excess.shape)
        raise GradcheckError(
            f"gradcheck {name}: gradient of {what} differs at index {tuple(int(i) for i in worst)}: "
            f"analytic {analytic[worst]!r}, numerical {numeric[worst]!r} "
            f"(atol={atol}, rtol={rtol})")


def gradgradcheck(fn: Callable, inputs: Sequence[Any], eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3) -> bool:
    """gradcheck of the gradients themselves, taken with ``create_graph=True``."""
    inputs = _checked(inputs)
    targets = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    rng = np.random.default_rng(4321)
    weights: dict = {}
    projections: dict = {}

    def first_grads(*xs: Any) -> Tensor:
        loss = _project(fn(*xs), weights)
        grads = autograd.grad(loss, [xs[i] for i in targets], create_graph=True, allow_unused=True)
        total = None
        for k, g in enumerate(grads):
            if g is None:
                continue
            if k not in projections:
                host = rng.standard_normal(g.shape).astype(g.dtype)
                projections[k] = Tensor(g.backend_object.from_host(host), g.backend_object)
            term = (g * projections[k]).sum()
            total = term if total is None else total + term
        if total is None:  # no gradient depends on anything: second derivative is zero
            total = (xs[targets[0]] * 0).sum()
        return total

    first_grads.__name__ = f"grad of {getattr(fn, '__name__', 'fn')}"
    return gradcheck(first_grads, inputs, eps=eps, atol=atol, rtol=rtol, _record=True)
