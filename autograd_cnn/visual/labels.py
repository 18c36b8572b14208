"""The words and colours of the pictures: each role's fill, the gradient states' colours, a tensor's
values as text, the HTML-like labels Graphviz draws, and the glossary under a rule."""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import shape_str
from .trace import TensorNode

KINDS = ("forward", "backward", "both")

# Fill colours by role, and the colours of the gradient states.
FILL = {"input": "#dbeafe", "parameter": "#dcfce7", "intermediate": "#ffffff", "output": "#fef3c7"}
OP_FILL, STEP_FILL, SUM_FILL, ACC_FILL, MODULE_FILL = "#f3f4f6", "#fee2e2", "#ede9fe", "#fde68a", "#e0f2fe"
FOLDED_FILL = "#e5e7eb"  # a folded run or an elided middle
GRAD_COLOR, ZERO_COLOR, PENDING_COLOR, SAVED_COLOR = "#b91c1c", "#c2410c", "#6b7280", "#9ca3af"

# Shorthand that a rule borrows from the lectures, explained in a small line under the rule.
GLOSSARY = {"z − z*": "z − z*: the probabilities softmax(z) minus z*, the one-hot labels"}



def glossary_lines(rules: list[str]) -> list[tuple[str, str]]:
    """The explanations of the lecture shorthand that ``rules`` use, as small label lines."""
    return [("small", text) for term, text in GLOSSARY.items() if any(term in r for r in rules)]


# --------------------------------------------------------------------------- text


def _num(v: float) -> str:
    return f"{v + 0.0:.4g}".replace("-", "−")  # + 0.0 turns -0.0 into 0.0


def values_text(a: np.ndarray | None, gone: str = "(freed by backward)") -> str:
    """Up to 8 elements as values, more as min / mean / max; ``gone`` where there are none."""
    if a is None:
        return gone
    if a.size == 0:
        return "empty"
    if a.dtype.kind == "b":
        a = a.astype(np.int8)
    if a.size <= 8:
        flat = ", ".join(_num(float(v)) for v in a.reshape(-1))
        return flat if a.ndim == 0 else f"[{flat}]"
    a = a.astype(np.float64, copy=False)
    return f"min {_num(float(a.min()))}  mean {_num(float(a.mean()))}  max {_num(float(a.max()))}"


def params_text(params: dict) -> str:
    parts = []
    for k, v in params.items():
        if v is None or k == "dtype":
            continue
        text = shape_str(v.shape) + " array" if hasattr(v, "shape") and not np.isscalar(v) else repr(v)
        parts.append(f"{k}={text if len(text) <= 24 else text[:21] + '...'}")
    return ", ".join(parts)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def output_grad(arrived: Any, t: TensorNode) -> Any:
    """The gradient that arrived at the op that made ``t``, for ``t`` alone: the op's one
    gradient, or for an op with several outputs, that output's (None where no path used it)."""
    return arrived[t.tensor.output_nr] if isinstance(arrived, tuple) else arrived


def html_label(lines: list[tuple[str, str]]) -> str:
    """An HTML-like Graphviz label from (style, text) lines: style "b", "i", "" or a colour."""
    out = []
    for style, text in lines:
        text = _esc(text)
        if style == "b":
            text = f"<B>{text}</B>"
        elif style == "i":
            text = f"<I>{text}</I>"
        elif style.startswith("#"):
            text = f'<FONT COLOR="{style}">{text}</FONT>'
        elif style.startswith("small"):
            text = f'<FONT POINT-SIZE="9" COLOR="{PENDING_COLOR}">{text}</FONT>'
        out.append(text)
    return "<" + "<BR/>".join(out) + ">"


# --------------------------------------------------------------------------- gradient states


@dataclass
class GradState:
    """What a tensor's gradient box says: kind is none, pending, zero, value or not-kept."""

    kind: str
    text: str = ""

    @property
    def color(self) -> str:
        return {"value": GRAD_COLOR, "zero": ZERO_COLOR}.get(self.kind, PENDING_COLOR)


def grad_state(t: Any, backward_ran: bool, known: np.ndarray | None = None) -> GradState:
    """The state of ``t``'s gradient: from ``known`` (a replayed backward) or from ``t.grad``."""
    if not getattr(t, "requires_grad", False):
        return GradState("none")
    g = known if known is not None else (t.grad.numpy() if t.grad is not None else None)
    if g is not None:
        if not np.any(g):
            return GradState("zero", f"∂L/∂· = 0 everywhere {shape_str(g.shape)}")
        return GradState("value", "∂L/∂· " + values_text(g))
    if t.grad_fn is not None and not backward_ran:
        return GradState("pending", "∂L/∂· not computed yet")
    if t.grad_fn is not None:
        return GradState("not-kept", "∂L/∂· computed, not kept (call .retain_grad())")
    if backward_ran:
        return GradState("none", "no gradient reached it")
    return GradState("pending", "∂L/∂· not computed yet")
