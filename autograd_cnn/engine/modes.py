"""The engine's modes: grad mode (``no_grad``), anomaly mode (``detect_anomaly``), whether nodes
keep every input's values (``keep_values``) and the module scope that tags new nodes, all held in
one context variable, so each thread has its own: a thread under ``no_grad()`` leaves every other
thread recording.

``current()`` (``MODES.get``) is the one read on the hot path (``Function.apply`` reads it once per op).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any


class Modes:
    """The engine's modes at one moment (never changed: a switch sets a new one)."""

    FIELDS = ("grad", "anomaly", "walking", "scope", "keep_values")
    __slots__ = (*FIELDS, "watch")

    def __init__(self, grad: bool = True, anomaly: bool = False, walking: bool = False, scope: str = "",
                 keep_values: bool = False) -> None:
        self.grad = grad  # ops record the graph
        self.anomaly = anomaly  # every op checks its output and gradients for NaN and Inf
        self.walking = walking  # a backward walk is running: anomaly mode checks gradients, not ops
        self.scope = scope  # the module path ("features.0") of the nn.Module whose forward runs
        self.keep_values = keep_values  # nodes keep every input tensor, large ones too (Function.apply)
        self.watch = anomaly and not walking  # apply checks each op: one test on its hot path

    def replace(self, field: str, value: Any) -> Modes:
        values = {name: getattr(self, name) for name in self.FIELDS}
        values[field] = value
        return Modes(**values)

    def __repr__(self) -> str:
        return "Modes(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS) + ")"


# A new thread starts from the default: recording, no anomaly checks, no scope.
MODES: ContextVar[Modes] = ContextVar("autograd_cnn.modes", default=Modes())  # noqa: B039 (never changed)
current = MODES.get  # this thread's modes: bound once, as the hot paths call it once per op


def set_mode(field: str, value: Any) -> Any:
    """Set one mode in this thread; returns its value before."""
    modes = current()
    previous = getattr(modes, field)
    if previous != value:
        MODES.set(modes.replace(field, value))
    return previous


def is_grad_enabled() -> bool:
    """True while operations record the graph (in this thread)."""
    return current().grad


def is_anomaly_enabled() -> bool:
    """True while every op checks its output and its gradients for NaN and Inf (``detect_anomaly``)."""
    return current().anomaly


class scope:
    """``with scope("features.0"):`` tags the nodes recorded inside with that path."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.previous = set_mode("scope", self.path)

    def __exit__(self, *exc: object) -> None:
        set_mode("scope", self.previous)


class _Switch:
    """The one mechanism behind the engine's switches (``no_grad``, ``enable_grad``,
    ``set_grad_enabled``; ``detect_anomaly``, ``set_detect_anomaly``): a ``with`` block that sets
    the mode ``field`` to ``mode`` in this thread and restores the caller's value on the way out
    (nested in any order, the same object re-entered too), or a decorator that does the same per call."""

    field: str  # the Modes field this switch sets
    mode: bool

    def __init__(self) -> None:
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        self._previous.append(set_mode(self.field, self.mode))

    def __exit__(self, *exc: object) -> None:
        set_mode(self.field, self._previous.pop())

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
        self._at_call: bool | None = set_mode(self.field, self.mode)  # what the first ``with`` restores

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
            set_mode(self.field, self._at_call)
            self._at_call = None
        return super().__call__(func)


class no_grad(_Switch):
    """``with ag.no_grad():`` (or ``@ag.no_grad()``) runs ops without recording a graph."""

    field, mode = "grad", False


class enable_grad(_Switch):
    """``with ag.enable_grad():`` (or ``@ag.enable_grad()``) records the graph even inside ``no_grad``."""

    field, mode = "grad", True


class set_grad_enabled(_SetAtOnce):
    """``ag.set_grad_enabled(flag)`` turns graph recording on or off at once; as a ``with`` block
    or a decorator it holds only inside."""

    field = "grad"


class detect_anomaly(_Switch):
    """``with ag.detect_anomaly():`` (or ``@ag.detect_anomaly()``): the first op whose forward output
    or backward gradient holds NaN or Inf raises ``AnomalyError`` naming the op, its module path,
    the shapes and the line that created it; a value an op saved for backward that changed behind
    the library's back is caught too. Slow (each op checks and copies what it saves): for
    finding a bug, not for training."""

    field, mode = "anomaly", True


class keep_values(_Switch):
    """``with ag.keep_values():`` (or ``@ag.keep_values()``): the graph recorded inside keeps every
    tensor's values, so that a picture of it shows them all. Outside it, a node does not keep an
    input of ``KEEP_VALUES_BELOW`` bytes or more that no op saved for backward (as in PyTorch,
    its memory goes when nothing else holds it); the picture then says "not kept"."""

    field, mode = "keep_values", True


class set_detect_anomaly(_SetAtOnce):
    """``ag.set_detect_anomaly(flag)`` turns anomaly checks on or off at once (see ``detect_anomaly``)."""

    field = "anomaly"
