"""The backward pass step by step: one picture per step, and a page with a slider over them.

``backprop_frames(loss, folder)`` replays the backward pass on the retained graph with
a hook on every step (``autograd.register_step_hook``), asking the engine for the
gradient of no input, so nothing is delivered: the user's graph stays intact and every
``.grad`` keeps its value. Call it before ``loss.backward()`` (or after
``loss.backward(retain_graph=True)``).
"""
from __future__ import annotations

import base64
import os
from typing import Any

from ..errors import ArgumentError, GraphError, shape_str
from .dot import Drawing, Frame
from .labels import glossary_lines, values_text
from .page import node_details, page
from .pictures import new_picture
from .render import file_path
from .trace import record_gradients, trace

FRAME_FORMATS = ("svg", "png")


def backprop_frames(loss: Any, folder: str | os.PathLike, format: str = "svg", kind: str = "backward",
                    rankdir: str = "TB") -> list[str]:
    """Write ``step_001.svg``, ``step_002.svg``, … (one per backward step, in the engine's order)
    and ``index.html``, a self-contained page with a slider over them (the HTML page of ``visual.page``:
    pan, zoom, and a click on a node shows its arrays and rule). Returns the frame paths.

    ``format`` is "svg" or "png"; ``kind`` "backward" (the backward graph) or "both" (forward
    and backward side by side). The user's graph and ``.grad`` values are left unchanged.
    """
    folder = file_path("backprop_frames", "folder", folder)
    if format not in FRAME_FORMATS:
        raise ArgumentError(f"backprop_frames: format must be one of {FRAME_FORMATS}, got {format!r}")
    if kind not in ("backward", "both"):
        raise ArgumentError(f"backprop_frames: kind must be \"backward\" or \"both\", got {kind!r}")
    tr = trace(loss)
    if loss.grad_fn is None:
        raise GraphError("backprop_frames: the tensor has no grad_fn, so backward has no steps; "
                         "pass a loss computed from tensors with requires_grad=True")
    steps = record_gradients(tr)
    drawing = Drawing(tr, steps=steps)
    os.makedirs(folder, exist_ok=True)
    paths, frames = [], []
    for k in range(len(steps)):
        frame = Frame(drawing, k)
        caption = step_caption(frame)
        data = frame_graph(drawing, frame, kind, rankdir, caption).pipe(format=format)
        path = os.path.join(folder, f"step_{k + 1:03d}.{format}")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
        frames.append({"caption": caption, "svg": data.decode("utf-8")} if format == "svg" else
                      {"caption": caption, "png": base64.b64encode(data).decode("ascii")})
    text = page(frames, title=f"Backward pass of {tr.output.label}", details=node_details(drawing), legend=True)
    with open(os.path.join(folder, "index.html"), "w", encoding="utf-8") as f:
        f.write(text)
    return paths


def frame_graph(drawing: Drawing, frame: Frame, kind: str, rankdir: str, caption: str) -> Any:
    """One frame: the backward (or both) graph in the state of ``frame``."""
    if kind == "both":
        from .pictures import both_graph

        return both_graph(None, drawing=drawing, frame=frame, rankdir=rankdir, label=caption)
    g = new_picture("backward", rankdir, caption)
    drawing.backward(g, frame=frame)
    return g


def step_caption(frame: Frame) -> str:
    """A line naming the step, its rule and the gradient that arrives."""
    op = frame.active
    step = frame.steps[frame.index]
    rules = op.ctx.rule_lines()
    explained = "".join(f" ({text})" for _, text in glossary_lines(rules))
    where = f" in {op.scope}" if op.scope else ""
    return (f"Step {frame.index + 1} of {len(frame.steps)}: {op.name}Backward{where}. "
            f"{_arrives(step.grad_output)}. "
            f"{'; '.join(rules)}{explained}")


def _arrives(grad_output: Any) -> str:
    """"∂L/∂y arrives (2, 3) [...]", one part per output for an op with several."""
    if not isinstance(grad_output, tuple):
        return f"∂L/∂y arrives {shape_str(grad_output.shape)} {values_text(grad_output)}"
    return "; ".join(f"∂L/∂y{k} " + ("unused" if g is None else f"arrives {shape_str(g.shape)} {values_text(g)}")
                     for k, g in enumerate(grad_output))
