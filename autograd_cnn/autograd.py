"""The engine, as users import it: ``from autograd_cnn import autograd`` (``autograd.Function``,
``autograd.GRAD_OUT``, ``autograd.register_step_hook``, ...). The code lives in ``engine/``:

- ``engine/function.py``: ``Function`` and its ``Context`` (the graph node), ``apply``;
- ``engine/walk.py``: the backward walk, ``backward``, ``grad``, the step hooks, ``queue_callback``;
- ``engine/modes.py``: ``no_grad`` and the other switches, per thread;
- ``engine/graph.py``: ``graph_of``; ``engine/anomaly.py``: ``detect_anomaly``'s checks;
- ``engine/unbroadcast.py``: ``SumTo`` and ``BroadcastTo``.

Inspecting a graph (what ``visual``, the exporters and the tests read; nothing else is theirs
to touch): ``graph_of(output)`` gives the nodes in the order backward runs them, each
``Context`` with its ``name``, ``fn``, ``inputs``, ``params``, ``scope``, ``saved``,
``needs_input_grad``, ``n_outputs`` and ``unbroadcast``. Hooks: ``Tensor.register_hook``,
``Tensor.register_post_accumulate_grad_hook``, ``register_step_hook``, and ``queue_callback``
(run something once when the backward that is running ends).
"""
from __future__ import annotations

from .engine.function import GRAD_OUT, KEEP_VALUES_BELOW, Context, Function, ReleasedTensor, UnkeptTensor
from .engine.graph import Graph, graph_of, topological_order
from .engine.modes import (
    detect_anomaly,
    enable_grad,
    is_anomaly_enabled,
    is_grad_enabled,
    keep_values,
    no_grad,
    scope,
    set_detect_anomaly,
    set_grad_enabled,
)
from .engine.unbroadcast import BroadcastTo, SumTo, broadcast_to, sum_to
from .engine.walk import backward, grad, queue_callback, register_step_hook, run_backward
from .hooks import RemovableHandle
from .tensor import as_tensor

__all__ = [
    "GRAD_OUT", "KEEP_VALUES_BELOW", "BroadcastTo", "Context", "Function", "Graph", "ReleasedTensor",
    "RemovableHandle", "SumTo", "UnkeptTensor", "as_tensor", "backward", "broadcast_to", "detect_anomaly",
    "enable_grad", "grad", "graph_of", "is_anomaly_enabled", "is_grad_enabled", "keep_values", "no_grad",
    "queue_callback", "register_step_hook", "run_backward", "scope", "set_detect_anomaly", "set_grad_enabled",
    "sum_to", "topological_order",
]
