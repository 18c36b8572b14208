"""The backward pass step by step: one picture per step, and a page with a slider over them.

``backprop_frames(loss, folder)`` replays the backward pass on the retained graph with
a hook on every step (``autograd.register_step_hook``), asking the engine for the
gradient of no input, so nothing is delivered: the user's graph stays intact and every
``.grad`` keeps its value. Call it before ``loss.backward()`` (or after
``loss.backward(retain_graph=True)``).
"""
from __future__ import annotations

import base64
import html
import os
import re
from importlib import resources
from typing import Any

from ..errors import GraphError, shape_str
from .dot import Drawing, Frame, new_picture, values_text
from .trace import record_gradients, trace

FRAME_FORMATS = ("svg", "png")


def backprop_frames(loss: Any, folder: str | os.PathLike, format: str = "svg", kind: str = "backward",
                    rankdir: str = "TB") -> list[str]:
    """Write ``step_001.svg``, ``step_002.svg``, … (one per backward step, in the engine's order)
    and ``index.html``, a self-contained page with a slider over them. Returns the frame paths.

    ``format`` is "svg" or "png"; ``kind`` "backward" (the backward graph) or "both" (forward
    and backward side by side). The user's graph and ``.grad`` values are left unchanged.
    """
    if format not in FRAME_FORMATS:
        raise ValueError(f"backprop_frames: format must be one of {FRAME_FORMATS}, got {format!r}")
    if kind not in ("backward", "both"):
        raise ValueError(f"backprop_frames: kind must be \"backward\" or \"both\", got {kind!r}")
    tr = trace(loss)
    if loss.grad_fn is None:
        raise GraphError("backprop_frames: the tensor has no grad_fn, so backward has no steps; "
                         "pass a loss computed from tensors with requires_grad=True")
    steps = record_gradients(tr)
    drawing = Drawing(tr, steps=steps)
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    paths, pictures, captions = [], [], []
    for k in range(len(steps)):
        frame = Frame(drawing, k)
        caption = step_caption(frame)
        g = frame_graph(drawing, frame, kind, rankdir, caption)
        data = g.pipe(format=format)
        path = os.path.join(folder, f"step_{k + 1:03d}.{format}")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
        pictures.append(_inline(data, format))
        captions.append(caption)
    with open(os.path.join(folder, "index.html"), "w", encoding="utf-8") as f:
        f.write(page(pictures, captions, title=f"Backward pass of {tr.output.label}"))
    return paths


def frame_graph(drawing: Drawing, frame: Frame, kind: str, rankdir: str, caption: str) -> Any:
    """One frame: the backward (or both) graph in the state of ``frame``."""
    if kind == "both":
        from .dot import both_graph

        return both_graph(None, drawing=drawing, frame=frame, rankdir=rankdir, label=caption)
    g = new_picture("backward", rankdir, caption)
    drawing.backward(g, frame=frame)
    return g


def step_caption(frame: Frame) -> str:
    """A line naming the step, its rule and the gradient that arrives."""
    op = frame.active
    step = frame.steps[frame.index]
    rules = "; ".join(op.ctx.rule_lines())
    where = f" in {op.scope}" if op.scope else ""
    return (f"Step {frame.index + 1} of {len(frame.steps)}: {op.name}Backward{where}. "
            f"∂L/∂y arrives {shape_str(step.grad_output.shape)} {values_text(step.grad_output)}. {rules}")


def _inline(data: bytes, format: str) -> str:
    if format == "png":
        return f'<img alt="frame" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'
    text = data.decode("utf-8")
    return text[text.index("<svg"):]  # drop the XML prologue and doctype


def page(pictures: list[str], captions: list[str], title: str) -> str:
    """The self-contained slider page: every frame inline, no network needed."""
    template = resources.files(__package__).joinpath("frames.html").read_text(encoding="utf-8")
    frames = "\n".join(
        f'<figure class="frame" id="frame-{k + 1}" data-caption="{html.escape(c, quote=True)}"'
        f'{"" if k == 0 else " hidden"}>{p}</figure>'
        for k, (p, c) in enumerate(zip(pictures, captions)))
    values = {"TITLE": html.escape(title), "COUNT": str(len(pictures)), "FRAMES": frames,
              "FIRST": html.escape(captions[0] if captions else "")}
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template)
