"""The pictures' public side: ``forward_graph``, ``backward_graph``, ``both_graph``, ``draw`` and
``save`` (``visual`` names them), each a ``Picture`` drawn by ``dot.Drawing`` from one ``Trace``."""
from __future__ import annotations

import os
from typing import Any

from ..errors import ArgumentError
from .dot import Drawing, Frame, Picture
from .labels import KINDS
from .render import check_format, write_file
from .trace import trace


def new_picture(name: str, rankdir: str, label: str = "", drawing: Drawing | None = None,
                timeout: float | None = None) -> Picture:
    """An empty picture with the house style: fonts, the layout direction and a caption."""
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ArgumentError(f"visual: rankdir must be \"TB\", \"LR\", \"BT\" or \"RL\", got {rankdir!r}")
    if timeout is not None and not timeout > 0:
        raise ArgumentError(f"visual: timeout must be a number of seconds above 0, got {timeout!r}")
    g = Picture(name)
    g.drawing, g.timeout = drawing, timeout
    g.attr(rankdir=rankdir, fontname="Helvetica", fontsize="11", newrank="true")
    g.attr("node", fontname="Helvetica", fontsize="10")
    g.attr("edge", fontname="Helvetica", fontsize="9")
    if label:
        g.attr(label=label, labelloc="t", fontsize="13")
    return g


def forward_graph(output: Any, collapse: str | None = None, collapse_depth: int | None = None,
                  rankdir: str = "TB", fold: bool | int = True, timeout: float | None = None) -> Picture:
    """The forward graph of ``output``: tensors (name, shape, values, gradient) and ops.

    ``collapse="module"`` draws one node per ``nn.Module`` path (cut to ``collapse_depth``
    parts when given); ``rankdir="LR"`` lays it out left to right. A graph too big to lay out
    quickly is folded (see ``visual.fold``; ``fold=False`` draws every op, a number sets the
    node limit); ``timeout`` bounds the seconds Graphviz may take.
    """
    drawing = Drawing(trace(output), collapse, collapse_depth, fold=fold, kind="forward")
    g = new_picture("forward", rankdir, drawing.note, drawing, timeout)
    drawing.forward(g)
    return g


def backward_graph(output: Any, collapse: str | None = None, collapse_depth: int | None = None,
                   rankdir: str = "TB", flow: bool = False, fold: bool | int = True,
                   timeout: float | None = None) -> Picture:
    """The backward graph: one node per backward step with its derivative rule, gradient edges.

    ``flow=True`` sets each edge's width and colour by log10‖gradient‖ (a replayed backward
    on the retained graph supplies them; ``.grad`` values are left as they were).
    """
    drawing = Drawing(trace(output), collapse, collapse_depth, flow=flow, fold=fold, kind="backward")
    g = new_picture("backward", rankdir, drawing.note, drawing, timeout)
    drawing.backward(g)
    return g


def both_graph(output: Any, collapse: str | None = None, collapse_depth: int | None = None,
               rankdir: str = "TB", flow: bool = False, drawing: Drawing | None = None,
               frame: Frame | None = None, label: str = "", fold: bool | int = True,
               timeout: float | None = None) -> Picture:
    """Forward and mirrored backward graph side by side, each backward step on the row of its
    forward op, with dashed lines from each saved value to the step that reads it."""
    drawing = drawing or Drawing(trace(output), collapse, collapse_depth, flow=flow, fold=fold, kind="both")
    g = new_picture("both", rankdir, label or drawing.note, drawing, timeout)
    with g.subgraph(name="cluster_forward") as f:
        f.attr(label="forward", color="#9ca3af", style="rounded")
        drawing.forward(f)
    with g.subgraph(name="cluster_backward") as b:
        b.attr(label="backward", color="#fca5a5", style="rounded")
        drawing.backward(b, mirror=True, frame=frame)
    drawing.bridges(g)
    drawing.align(g)
    return g


def draw(output: Any, kind: str = "forward", collapse: str | None = None, **options: Any) -> Picture:
    """``kind="forward" | "backward" | "both"`` picture of ``output``'s graph as a Digraph.

    Options: ``collapse_depth``, ``rankdir`` ("TB" or "LR"), ``flow`` (backward, both),
    ``fold`` (True: fold a graph too big to lay out quickly; False: draw every op; a number:
    the node limit) and ``timeout`` (seconds Graphviz may take).
    """
    if kind == "forward":
        options.pop("flow", None)
        return forward_graph(output, collapse=collapse, **options)
    if kind == "backward":
        return backward_graph(output, collapse=collapse, **options)
    if kind == "both":
        return both_graph(output, collapse=collapse, **options)
    raise ArgumentError(f"visual.draw: kind must be one of {KINDS}, got {kind!r}")


def save(output: Any, path: str | os.PathLike, kind: str = "forward", format: str | None = None,
         collapse: str | None = None, **options: Any) -> str:
    """Write the picture to ``path`` as svg, png, pdf, dot or html (default: from the file's suffix).

    A path without a suffix gets the format's; a suffix that is no known format is an error.
    Returns the path written. svg, png and pdf need Graphviz's ``dot`` program; dot does not,
    and html (one page with pan, zoom and a click on a node for its arrays and rule) draws in
    the browser where ``dot`` is missing. ``options`` as for ``draw``; html also takes
    ``viz_js`` (a URL, file or folder of @viz-js/viz; see ``visual.page``).
    """
    format, path = check_format(path, format)
    viz_js = options.pop("viz_js", None)
    g = draw(output, kind=kind, collapse=collapse, **options)
    if format in ("svg", "png", "pdf"):
        data = g.pipe(format=format)  # before any file is made: a missing dot leaves nothing behind
    elif format == "html":
        from .page import picture_page

        data = picture_page(g, title=f"{kind} graph of {g.drawing.tr.output.label}", viz_js=viz_js).encode("utf-8")
    else:
        data = g.source.encode("utf-8")
    write_file(path, data)
    return path
