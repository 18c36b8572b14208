"""Graphviz pictures of a graph: the forward pass, the backward pass, or both side by side.

Every picture is built from one ``Trace`` and returned as a ``graphviz.Digraph``
(shown inline by Jupyter). Node ids are stable and readable: ``t3`` a tensor, ``op2``
an op, ``m0`` a module (collapsed), ``b…`` a backward step, ``g…`` a leaf's gradient,
``s…`` a sum back to a broadcast input's shape, ``acc…`` a "+" that adds the gradients
of a tensor used several times, ``seed`` the gradient backward starts from.

Here: ``Picture`` and ``Drawing``, which lays the nodes and edges out. Their words and colours
are in ``labels.py``; the public functions (``forward_graph``, ``draw``, ``save``) in ``pictures.py``.
"""
from __future__ import annotations

import math
import os
from typing import Any

import graphviz
import numpy as np

from ..errors import ArgumentError, AutogradError, shape_str
from .fold import FOLD_LIMIT, Unit, build_units, fold_units
from .labels import (
    ACC_FILL,
    FILL,
    FOLDED_FILL,
    MODULE_FILL,
    OP_FILL,
    PENDING_COLOR,
    SAVED_COLOR,
    STEP_FILL,
    SUM_FILL,
    ZERO_COLOR,
    GradState,
    glossary_lines,
    grad_state,
    html_label,
    output_grad,
    params_text,
    values_text,
)
from .render import INSTALL_HINT, RenderError, have_dot, run_dot, write_file
from .trace import Step, TensorNode, Trace, record_gradients, replay_backward


class Picture(graphviz.Digraph):
    """A ``graphviz.Digraph`` that lays out with a timeout, says how to install a missing ``dot``,
    and in Jupyter draws in the browser where ``dot`` is missing.

    ``drawing`` is what it was drawn from (the HTML page asks it what a click on a node shows);
    ``timeout`` the seconds dot may take (None: the default, 60 s).
    """

    timeout: float | None = None
    drawing: Drawing | None = None  # what the picture was drawn from (the HTML page reads it)

    def pipe(self, format: str | None = None, *args: Any, encoding: str | None = None, **kwargs: Any) -> Any:
        data = run_dot(self.source, format or self.format, self.timeout)
        return data.decode(encoding) if encoding else data

    def render(self, filename: str | os.PathLike | None = None, directory: str | os.PathLike | None = None,
               view: bool = False, cleanup: bool = False, format: str | None = None, **kwargs: Any) -> str:
        """Save the DOT source as ``filename`` and the picture as ``filename.<format>``; returns the
        picture's path (graphviz's own ``render``, run with a timeout)."""
        if view:
            raise ArgumentError("Picture.render: view=True is not supported; open the file it returns")
        format = format or self.format
        path = os.path.join(os.fspath(directory or self.directory or ""), os.fspath(filename or self.filename))
        outfile = kwargs.get("outfile")
        target = os.fspath(outfile) if outfile is not None else f"{path}.{format}"
        data = self.pipe(format)  # before any file is made: a failing dot leaves nothing behind
        if not cleanup and outfile is None:
            write_file(path, self.source.encode("utf-8"))
        write_file(target, data)
        return target

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict:
        """Jupyter's view: SVG from dot where it is installed, else a page that draws in the browser."""
        if not have_dot():
            from .page import notebook_html

            return {"text/html": notebook_html(self),
                    "text/plain": f"Graphviz's `dot` is missing: the picture is drawn in the browser. {INSTALL_HINT}"}
        try:
            return {"image/svg+xml": self.pipe("svg", encoding="utf-8")}
        except RenderError as e:  # never hang or crash a notebook cell: say what happened
            return {"text/plain": str(e)}


# --------------------------------------------------------------------------- the picture


class Drawing:
    """Builds the forward and backward parts of a picture from one trace."""

    def __init__(self, tr: Trace, collapse: str | None = None, collapse_depth: int | None = None,
                 flow: bool = False, steps: list[Step] | None = None, fold: bool | int = False,
                 kind: str = "both") -> None:
        self.tr = tr
        self.units = build_units(tr, collapse, collapse_depth)
        self.fold_note = ""
        if fold is not False:
            if isinstance(fold, bool) or not isinstance(fold, int) or fold < 1:
                if fold is not True:
                    raise ArgumentError(f"visual: fold must be True, False or a positive number of nodes, got {fold!r}")
                fold = FOLD_LIMIT
            self.units, self.fold_note = fold_units(tr, self.units, collapse, collapse_depth, kind, fold)
        self.unit_of = {op.id: u for u in self.units for op in u.ops}
        self.marks: dict[str, tuple[str, list[tuple[str, str]]]] = {}  # step id -> (fill, extra lines)
        self.ran = tr.backward_ran
        self.flow = flow
        self.note = self.fold_note
        if steps is None and flow:
            try:
                steps = record_gradients(tr)
            except AutogradError:
                self.note = " ".join(filter(None, [
                    self.note, "gradient flow: only the leaves' .grad is known, backward() freed the rest; "
                               "use backward(retain_graph=True) to see every edge"]))
        self.steps = steps
        # Every gradient the replayed backward sent, by (op id, input index).
        self.sent: dict[tuple[str, int], np.ndarray] = {}
        self.arrived: dict[str, np.ndarray] = {}
        for s in steps or []:
            self.arrived[s.op.id] = s.grad_output
            for i, g in enumerate(s.input_grads):
                if g is not None:
                    self.sent[(s.op.id, i)] = g

    # --- forward -----------------------------------------------------------
    def drawn(self, t: TensorNode) -> bool:
        """Tensors get their own node unless they live inside a collapsed module."""
        if t.producer is None or t is self.tr.output:
            return True
        return self.unit_of[t.producer.id].module is None

    def source(self, t: TensorNode) -> str:
        return t.id if self.drawn(t) else self.unit_of[t.producer.id].id

    def tensor_node(self, g: Any, t: TensorNode) -> None:
        tensor = t.tensor
        lines = [("b", t.label), ("", f"{shape_str(tuple(tensor.shape))} {tensor.dtype}")]
        lines.append(("", values_text(tensor.numpy(), getattr(tensor, "gone", ""))))
        state = grad_state(tensor, self.ran)
        if t.role == "output" and state.kind == "not-kept":  # backward started from ones here
            state = GradState("value", "∂L/∂L = 1" if tensor.size == 1 else "∂L/∂y = ones (the seed)")
        attrs = {"fillcolor": FILL[t.role], "style": "filled,rounded"}
        if t.role == "parameter":
            attrs["penwidth"] = "2"
        elif t.role == "output":
            attrs["peripheries"] = "2"
        if state.kind != "none" or state.text:
            lines.append((state.color, state.text))
            if state.kind == "pending":
                attrs["style"] = "filled,rounded,dashed"
            elif state.kind == "zero":
                attrs["color"] = ZERO_COLOR
        g.node(t.id, html_label(lines), shape="box", **attrs)

    def unit_node(self, g: Any, u: Unit) -> None:
        if u.module is None:
            op = u.ops[0]
            lines = [("b", op.name)]
            params = params_text(op.ctx.params)
            if params:
                lines.append(("", params))
            if op.scope:
                lines.append(("small", op.scope))
            g.node(u.id, html_label(lines), shape="ellipse", style="filled", fillcolor=OP_FILL)
            return
        lines = [("b", u.title()), ("", f"out {shape_str(tuple(u.output.tensor.shape))}")]
        if not u.folded:
            for p in u.absorbed:
                name = p.label[len(u.module) + 1:] if p.label.startswith(u.module + ".") else p.label
                lines.append(("", f"{name} {shape_str(tuple(p.tensor.shape))}"))
        count = f"{len(u.ops):,} op{'s' if len(u.ops) > 1 else ''}"
        if u.folded:
            params = sum(1 for p in u.absorbed if p.role == "parameter")
            count += f", {params:,} parameter tensors" if params else ""
            count += f" in {u.repeat} blocks" if u.repeat > 1 else ""
        lines.append(("small", count))
        g.node(u.id, html_label(lines), shape="box3d", style="filled",
               fillcolor=FOLDED_FILL if u.folded else MODULE_FILL)

    def forward(self, g: Any) -> None:
        """Tensor boxes and op ellipses (or module boxes), data flowing from inputs to output."""
        absorbed = {t.id for u in self.units for t in u.absorbed}
        for t in self.tr.tensors:
            if self.drawn(t) and t.id not in absorbed:
                self.tensor_node(g, t)
        for u in self.units:
            self.unit_node(g, u)
            for t in u.inputs:
                label = ""
                if u.module is None and len(u.ops[0].inputs) > 1:
                    label = ", ".join(n for n, x in zip(u.ops[0].arg_names(), u.ops[0].inputs) if x is t)
                elif not self.drawn(t):
                    label = shape_str(tuple(t.tensor.shape))
                g.edge(self.source(t), u.id, **({"label": label} if label else {}))
            last = u.ops[-1]
            for out in last.outputs:  # an op with several outputs: one node, an edge to each
                if self.drawn(out) and out.producer is last:
                    label = {"label": f"y{out.tensor.output_nr}"} if last.ctx.n_outputs > 1 else {}
                    g.edge(u.id, out.id, **label)

    # --- backward ----------------------------------------------------------
    def step_units(self) -> list[Unit]:
        """Units that run a backward step, in the engine's order."""
        order = {op.id: k for k, op in enumerate(self.tr.steps)}
        units = [u for u in self.units if any(op.id in order for op in u.ops)]
        return sorted(units, key=lambda u: min(order[op.id] for op in u.ops if op.id in order))

    def grad_uses(self, t: TensorNode) -> list[tuple[Unit, int]]:
        """Each gradient sent to ``t``: one per (op, input) use, one per module when collapsed."""
        out, seen = [], set()
        for op, i in self.tr.uses.get(id(t.tensor), []):
            u = self.unit_of[op.id]
            if u.module is not None:
                if u.id in seen or t not in u.inputs:
                    continue
                seen.add(u.id)
            out.append((u, i))
        return out

    def grad_leaves(self) -> list[TensorNode]:
        """The leaves a gradient reaches (each gets a ``.grad`` node), in the order steps reach them."""
        leaves: dict[str, TensorNode] = {}
        for u in self.step_units():
            for t in u.inputs:
                if t.producer is None and any(v is u for v, _ in self.grad_uses(t)):
                    leaves.setdefault(t.id, t)
        return list(leaves.values())

    def grad_to(self, t: TensorNode) -> str:
        """Where ``t``'s gradient ends: its producer's backward step, or the leaf's ``.grad``."""
        if t.producer is not None:
            return "b" + self.unit_of[t.producer.id].id
        return "g" + t.id

    def backward(self, g: Any, mirror: bool = False, frame: Frame | None = None) -> None:
        """Backward steps with their rules, gradient edges, SumTo and "+" nodes, leaf gradients."""
        edge = _mirrored_edge(g) if mirror else g.edge
        out = self.tr.output
        seed_text = "∂L/∂L = 1" if out.tensor.size == 1 else f"∂L/∂y = ones {shape_str(tuple(out.tensor.shape))}"
        g.node("seed", html_label([("b", seed_text), ("small", out.label)]), shape="box", style="filled,rounded",
               fillcolor=FILL["output"])
        steps = self.step_units()
        if not steps:
            return
        if self.steps is None and not self.tr.freed:
            replay_backward(self.tr)  # the engine records its un-broadcast steps as it walks
        edge("seed", "b" + self.unit_of[out.producer.id].id, **self.grad_edge(None, out, frame))
        for u in steps:
            self.step_node(g, u, frame)
            for t in u.inputs:
                for _, i in [(v, i) for v, i in self.grad_uses(t) if v is u]:
                    self.gradient_path(g, edge, u, t, i, frame)
        for t in self.grad_leaves():
            self.leaf_grad_node(g, t, frame)
        for t in self.tr.tensors:
            if len(self.grad_uses(t)) > 1:
                self.accumulate_node(g, edge, t, frame)

    def gradient_path(self, g: Any, edge: Any, u: Unit, t: TensorNode, i: int, frame: Frame | None) -> None:
        """Step ``u`` → [sum to the broadcast shape] → ["+" of several uses] → ``t``'s destination."""
        shape = shape_str(tuple(t.tensor.shape))
        op = u.ops[0] if u.module is None else None
        tail = "b" + u.id
        attrs = self.grad_edge((u, i), t, frame)
        if op is not None and op.unbroadcast(i) is not None:
            node = f"s{op.id}_{i}"
            full = shape_str(op.unbroadcast(i))
            g.node(node, html_label([("b", "SumTo"), ("", f"{full} → {shape}"), ("small", "sum over broadcast axes")]),
                   shape="box", style="filled", fillcolor=SUM_FILL)
            edge(tail, node, **{**attrs, "label": full})
            tail = node
        if len(self.grad_uses(t)) > 1:
            edge(tail, f"acc{t.id}", **attrs)
        else:
            edge(tail, self.grad_to(t), **attrs)

    def accumulate_node(self, g: Any, edge: Any, t: TensorNode, frame: Frame | None) -> None:
        uses = self.grad_uses(t)
        text = f"{len(uses)} uses of {t.label}"
        if frame is not None:
            text = f"{frame.arrivals(t, uses)} of {len(uses)} arrived"
        g.node(f"acc{t.id}", '<<FONT POINT-SIZE="16">+</FONT>>', xlabel=text, shape="circle", style="filled",
               fillcolor=ACC_FILL, width="0.4", fixedsize="true")
        attrs = self.grad_edge(None, t, frame, summed=True)
        edge(f"acc{t.id}", self.grad_to(t), **attrs)

    def step_node(self, g: Any, u: Unit, frame: Frame | None) -> None:
        if u.module is None:
            op = u.ops[0]
            lines = [("b", f"{op.name}Backward")]
            rules = op.ctx.rule_lines()
            lines += [("", r) for r in rules] + glossary_lines(rules)
            if op.scope:
                lines.append(("small", op.scope))
        else:
            lines = [("b", f"{u.title()} backward")]
            if len(u.ops) == 1:
                rules = u.ops[0].ctx.rule_lines()
                lines += [("", r) for r in rules] + glossary_lines(rules)
            else:
                lines.append(("small", f"{len(u.ops)} ops"))
            for p in [] if u.folded else u.absorbed:
                state = grad_state(p.tensor, self.ran, frame.leaf_grad(p) if frame else None)
                lines.append((state.color, f"{p.label}: {state.text}"))
        attrs = {"fillcolor": STEP_FILL, "style": "filled,rounded"}
        mark = self.marks.get("b" + u.id)
        if mark is not None:  # a verdict on this step (gradcheck_graph): its colour and lines
            attrs["fillcolor"] = mark[0]
            lines += mark[1]
        if frame is not None:
            attrs.update(frame.step_style(u))
        g.node("b" + u.id, html_label(lines), shape="box", **attrs)

    def leaf_grad_node(self, g: Any, t: TensorNode, frame: Frame | None) -> None:
        known = frame.leaf_grad(t) if frame is not None else None
        ran = self.ran if frame is None else frame.done_all
        state = grad_state(t.tensor, ran, known)
        if frame is not None and known is None:
            state = GradState("pending", "∂L/∂· not computed yet")
        lines = [("b", f"{t.label}.grad"), ("", shape_str(tuple(t.tensor.shape))), (state.color, state.text)]
        attrs = {"fillcolor": FILL["parameter"], "style": "filled,rounded"}
        if state.kind == "pending":
            attrs["style"] = "filled,rounded,dashed"
        elif state.kind == "zero":
            attrs["color"] = ZERO_COLOR
        g.node("g" + t.id, html_label(lines), shape="box", **attrs)

    def grad_edge(self, use: tuple[Unit, int] | None, t: TensorNode, frame: Frame | None,
                  summed: bool = False) -> dict:
        """Edge attributes for a gradient of ``t``: its shape, and its size when flow is on."""
        attrs = {"label": shape_str(tuple(t.tensor.shape))}
        grad = self.edge_grad(use, t, summed)
        if self.flow and grad is not None:
            attrs.update(flow_style(grad))
            attrs["label"] += f"\n‖g‖={attrs.pop('norm')}"
        if frame is not None:
            attrs.update(frame.edge_style(use, t, summed, grad))
        return attrs

    def edge_grad(self, use: tuple[Unit, int] | None, t: TensorNode, summed: bool) -> np.ndarray | None:
        if use is None:  # the gradient arriving at t's producer, or the seed
            if t.producer is not None and t.producer.id in self.arrived:
                return output_grad(self.arrived[t.producer.id], t)
            if t is self.tr.output:
                return np.ones(tuple(t.tensor.shape))
            if summed and self.sent:  # a leaf: the sum of what its uses sent
                parts = [self.sent.get((op.id, i)) for op, i in self.tr.uses.get(id(t.tensor), [])]
                parts = [p for p in parts if p is not None]
                return sum(parts[1:], parts[0].copy()) if parts else None
            return t.tensor.grad.numpy() if summed and t.tensor.grad is not None else None
        u, i = use
        op = next((op for op in u.ops if t in op.inputs), None)
        if op is None:
            return None
        grad = self.sent.get((op.id, op.inputs.index(t) if u.module else i))
        if grad is None and t.producer is None and len(self.grad_uses(t)) == 1 and t.tensor.grad is not None:
            grad = t.tensor.grad.numpy()
        return grad

    def bridges(self, g: Any) -> None:
        """Dashed lines from each value forward saved to the backward step that reads it, labelled
        with its name in the op's own words ("x", "the max-pool mask")."""
        style = {"style": "dashed", "color": SAVED_COLOR, "fontcolor": "#6b7280", "constraint": "false"}
        for u in self.step_units():
            if u.module is not None:
                g.edge(u.id, "b" + u.id, arrowhead="none", label="saved", **style)
                continue
            for item, name in self.tr.saved(u.ops[0]) or []:
                if isinstance(item, tuple):  # an array of forward's own (a mask): from the op node
                    g.edge(u.id, "b" + u.id, arrowhead="odot", arrowsize="0.6", label=name, **style)
                elif self.drawn(item):
                    g.edge(item.id, "b" + u.id, arrowhead="odot", arrowsize="0.6", label=name, **style)

    def details(self, array_text: Any) -> dict[str, dict]:
        """What a click on each node shows in the HTML page, by node id: ``title``, ``lines`` and
        ``sections`` of (heading, text), the arrays written by ``array_text``."""
        steps, sent, arrived = self.steps, self.sent, self.arrived
        if steps is None and not self.tr.freed and self.step_units():
            steps = record_gradients(self.tr)  # every gradient backward sends, for the steps
            arrived = {s.op.id: s.grad_output for s in steps}
            sent = {(s.op.id, i): g for s in steps for i, g in enumerate(s.input_grads) if g is not None}
        out: dict[str, dict] = {}
        absorbed = {t.id for u in self.units for t in u.absorbed}
        for t in self.tr.tensors:
            if not self.drawn(t) or t.id in absorbed:
                continue
            tensor = t.tensor
            grad = tensor.grad.numpy() if getattr(tensor, "grad", None) is not None else None
            gradient = array_text(grad) if grad is not None else grad_state(tensor, self.ran).text or "none"
            out[t.id] = {"title": t.label, "lines": [f"{shape_str(tuple(tensor.shape))} {tensor.dtype}, {t.role}"],
                         "sections": [("value", array_text(tensor.numpy(), getattr(tensor, "gone", ""))),
                                      ("gradient ∂L/∂·", gradient)]}
            if t.producer is None and t.role == "parameter":
                out["g" + t.id] = {"title": f"{t.label}.grad", "lines": [shape_str(tuple(tensor.shape))],
                                   "sections": [("gradient", gradient)]}
        for u in self.units:
            rules = [r for op in u.ops[:1] for r in op.ctx.rule_lines()] if len(u.ops) == 1 else []
            lines = [f"{len(u.ops):,} ops" if len(u.ops) > 1 else params_text(u.ops[0].ctx.params)]
            lines += [f"module {u.module}"] if u.module else ([f"module {u.ops[0].scope}"] if u.ops[0].scope else [])
            inputs = "\n".join(f"{t.label}: {shape_str(tuple(t.tensor.shape))}" for t in u.inputs)
            params = "\n".join(f"{t.label}: {shape_str(tuple(t.tensor.shape))}" for t in u.absorbed[:50])
            out[u.id] = {"title": u.title(), "lines": [x for x in lines if x],
                         "sections": [("inputs", inputs)] + ([("parameters", params)] if params else [])}
            if not any(any(op.ctx.needs_input_grad) for op in u.ops):
                continue
            explained = rules + [text for _, text in glossary_lines(rules)]
            sections = [("derivative rule", "\n".join(explained))] if rules else []
            if len(u.ops) == 1 and u.ops[0].id in arrived:
                op = u.ops[0]
                got = arrived[op.id]
                if isinstance(got, tuple):  # several outputs: the gradient of each
                    sections += [(f"gradient arriving ∂L/∂y{k}", "unused: zeros" if g is None else array_text(g))
                                 for k, g in enumerate(got)]
                else:
                    sections.append(("gradient arriving ∂L/∂y", array_text(got)))
                for i, (name, t) in enumerate(zip(op.arg_names(), op.inputs)):
                    if (op.id, i) in sent:
                        sections.append((f"gradient sent to {name} ({t.label})", array_text(sent[(op.id, i)])))
            out["b" + u.id] = {"title": f"{u.title()} backward" if u.module is not None else f"{u.title()}Backward",
                               "lines": [f"{len(u.ops):,} ops"] if len(u.ops) > 1 else [], "sections": sections}
        out["seed"] = {"title": "the seed of backward", "lines": ["∂L/∂L = 1: backward starts from ones"],
                       "sections": []}
        return out

    def align(self, g: Any) -> None:
        """Put each backward step on the rank of its forward op (and each leaf's gradient beside the
        leaf), so the two columns read line by line and every saved-tensor edge spans about one
        rank. Left to itself dot ranks the backward column more densely than the forward one (no
        tensor nodes between steps), so the k-th saved edge would cross about k ranks: O(n²)
        virtual nodes for crossing minimisation and placement to push around."""
        pairs = [(u.id, "b" + u.id) for u in self.step_units()]
        pairs += [(t.id, "g" + t.id) for t in self.grad_leaves()]
        if self.tr.output.producer is not None:
            pairs.append((self.tr.output.id, "seed"))
        for forward_id, backward_id in pairs:
            with g.subgraph() as s:
                s.attr(rank="same")
                s.edge(forward_id, backward_id, style="invis")  # a flat edge: forward on the left

def flow_style(grad: np.ndarray) -> dict:
    """Width and colour by log10 of the gradient's norm: blue thin (vanishing) to red thick (exploding)."""
    norm = float(np.linalg.norm(grad.astype(np.float64, copy=False)))
    level = math.log10(norm) if norm > 0 else -12.0
    x = min(max((level + 6) / 8, 0.0), 1.0)  # 1e-6 → 0, 1e2 → 1
    r, b = int(40 + 200 * x), int(220 - 190 * x)
    return {"penwidth": f"{0.6 + 4.4 * x:.2f}", "color": f"#{r:02x}30{b:02x}",
            "norm": f"{norm:.2g}", "fontcolor": f"#{r:02x}30{b:02x}"}


def _mirrored_edge(g: Any) -> Any:
    """Draw gradient edges head-first so the backward graph ranks as the forward one's mirror."""
    def edge(tail: str, head: str, **attrs: Any) -> None:
        g.edge(head, tail, dir="back", **attrs)
    return edge


class Frame:
    """The state of the backward pass while step ``index`` of ``steps`` runs."""

    def __init__(self, drawing: Drawing, index: int) -> None:
        self.drawing = drawing
        self.index = index
        self.steps = drawing.steps or []
        self.active = self.steps[index].op
        self.done = {s.op.id for s in self.steps[:index]}
        self.done_all = index == len(self.steps) - 1
        # Which gradients have been sent so far, by (op id, input index): before and at this step.
        self.sent = {(s.op.id, i) for s in self.steps[:index + 1] for i, g in enumerate(s.input_grads)
                     if g is not None}

    def step_style(self, u: Unit) -> dict:
        op = u.ops[0]
        if op is self.active:
            return {"fillcolor": "#fde047", "penwidth": "3", "color": "#a16207"}
        if op.id in self.done:
            return {"fillcolor": "#dcfce7", "color": "#15803d"}
        return {"fillcolor": "#ffffff", "color": PENDING_COLOR, "fontcolor": PENDING_COLOR,
                "style": "rounded,dashed"}

    def edge_style(self, use: tuple[Unit, int] | None, t: TensorNode, summed: bool, grad: Any) -> dict:
        active_in = use is None and t.producer is self.active
        if use is not None:
            key = (use[0].ops[0].id, use[1])
            if key not in self.sent:
                return {"color": "#d1d5db", "fontcolor": "#9ca3af", "style": "dashed"}
            if use[0].ops[0] is self.active:  # leaving the active step
                return {"color": "#ca8a04", "penwidth": "3", "fontcolor": "#a16207",
                        "label": f"{shape_str(tuple(t.tensor.shape))}\n{values_text(grad)}"}
            if t.producer is self.active and len(self.drawing.grad_uses(t)) == 1:
                active_in = True
            else:
                return {}
        if active_in:
            return {"color": "#2563eb", "penwidth": "3", "fontcolor": "#1d4ed8",
                    "label": f"{shape_str(tuple(t.tensor.shape))}\n{values_text(grad)}"}
        arrived = t.producer is not None and (t.producer.id in self.done or t.producer is self.active)
        if summed and t.producer is None:  # a leaf takes each gradient as it comes
            arrived = self.arrivals(t, self.drawing.grad_uses(t)) > 0
        return {} if arrived or t is self.drawing.tr.output else {"color": "#d1d5db", "fontcolor": "#9ca3af",
                                                                   "style": "dashed"}

    def arrivals(self, t: TensorNode, uses: list) -> int:
        return sum((u.ops[0].id, i) in self.sent for u, i in uses)

    def leaf_grad(self, t: TensorNode) -> np.ndarray | None:
        """The leaf's gradient accumulated from the steps run so far (None: nothing yet)."""
        total = None
        for op, i in self.drawing.tr.uses.get(id(t.tensor), []):
            if (op.id, i) in self.sent:
                g = self.drawing.sent[(op.id, i)]
                total = g.copy() if total is None else total + g
        return total
