"""``detect_anomaly``'s checks: an op's outputs on the way forward (``watch``), each node's input
gradients on the way back (``check_grads``), and where in the user's code the op was made."""
from __future__ import annotations

import os
import traceback
from collections.abc import Sequence
from typing import Any

from ..errors import AnomalyError, shape_str


def watch(ctx: Any, inputs: Sequence[Any], outs: Sequence[Any], recorded: bool) -> None:
    """detect_anomaly's forward side: note where the op was created, copy what it saved, and
    stop at the first output that holds NaN or Inf."""
    ctx.created_at = user_line()
    if recorded and ctx._saved:
        ctx.saved_copies = [ctx.xp.array(v, copy=True) if ctx.backend.is_array(v) else None for v in ctx._saved]
    for k, out in enumerate(outs):
        bad = non_finite(ctx.xp, out)
        if bad:
            shapes = ", ".join(shape_str(t.shape) for t in inputs)
            which = f"its output {k}" if len(outs) > 1 else "its output"
            raise AnomalyError(f"{ctx.name}{where(ctx)}: {which} of shape {shape_str(out.shape)} holds {bad}, "
                               f"from inputs of shapes {shapes}, at {ctx.created_at}. Look at this op's inputs "
                               "(a log of 0, a square root of a negative number, a division by 0, an overflow).")


def check_grads(node: Any, input_grads: tuple) -> None:
    """detect_anomaly's backward side: stop at the first gradient that holds NaN or Inf."""
    names = node.fn.input_names(len(node.inputs))
    for i, g in enumerate(input_grads):
        bad = non_finite(node.xp, g._data) if g is not None else ""
        if bad:
            raise AnomalyError(
                f"{node.name}Backward{where(node)}: the gradient for its input {names[i]} of shape "
                f"{shape_str(g.shape)} holds {bad}; the op was created at "
                f"{node.created_at}.")


def non_finite(xp: Any, array: Any) -> str:
    """'NaN', 'Inf' or '' for a float array (integers and booleans are always finite)."""
    if array.dtype.kind not in "fc" or bool(xp.isfinite(array).all()):
        return ""
    return "NaN" if bool(xp.isnan(array).any()) else "Inf"


def user_line() -> str:
    """The first line of the stack outside this package: where the user's code made the op."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(package + os.sep):
            return f"{frame.filename}:{frame.lineno} ({(frame.line or '').strip()})"
    return "an unknown line"


def where(node: Any) -> str:
    """`` in features.0`` for a node recorded inside a module, else nothing."""
    return f" in {node.scope}" if node.scope else ""
