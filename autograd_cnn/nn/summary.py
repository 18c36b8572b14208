"""``model.summary(input_shape)``: Keras's table of layers, output shapes and parameter counts.

Shapes come from one forward pass on a zero batch of 1, watched by a forward hook on every
module (taken off again afterwards). As in Keras, batch norm's running statistics count as
non-trainable parameters.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..autograd import no_grad
from ..backends import get_backend
from ..tensor import Tensor

_WIDTHS = (29, 26, 10)


def summary(model: Any, input_shape: Any, print_fn: Callable[[str], Any] = print) -> int:
    """Print the table and return the total parameter count (trainable + non-trainable)."""
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    if shape and shape[0] is None:  # (None, 1, 28, 28): Keras's way of writing the batch axis
        shape = shape[1:]
    param = next(iter(model.parameters()), None)
    backend = param.backend_object if param is not None else get_backend()
    dtype = param.dtype if param is not None else "float32"
    x = Tensor(backend.xp.zeros((1,) + shape, dtype=dtype), backend)
    rows: list[tuple[Any, Any]] = []  # (module, output) in the order the calls return

    def record(module: Any, inputs: tuple, output: Any) -> None:
        rows.append((module, output))

    handles = [m.register_forward_hook(record) for m in model.modules()]
    try:
        with model.switched_mode(training=False), no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    print_fn(_table(model, rows))
    return _count(model)[0]


def _own_count(module: Any) -> int:
    tensors = [p for p in module._parameters.values() if p is not None]
    tensors += [b for b in module._buffers.values() if b is not None]
    return sum(t.size for t in tensors)


def _count(model: Any) -> tuple[int, int, int, int]:
    """(total, trainable, non-trainable, bytes) over unique parameters and float buffers."""
    trainable = frozen = nbytes = 0
    for t in list(model.parameters()) + [b for b in model.buffers() if b.dtype.kind == "f"]:
        if t.requires_grad:
            trainable += t.size
        else:
            frozen += t.size
        nbytes += t.size * t.dtype.itemsize
    return trainable + frozen, trainable, frozen, nbytes


def _shape_text(out: Any) -> str:
    if isinstance(out, Tensor):
        return "(" + ", ".join(["None"] + [str(n) for n in out.shape[1:]]) + ")"
    if isinstance(out, (tuple, list)):
        return "[" + ", ".join(_shape_text(o) for o in out) + "]"
    return type(out).__name__


def _bytes_text(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


def _line(*cells: str) -> str:
    """Cells at Keras's column positions (a long cell pushes the next one right by one space)."""
    text = " "
    for cell, end in zip(cells, (_WIDTHS[0], _WIDTHS[0] + _WIDTHS[1], sum(_WIDTHS))):
        text += cell
        text = text.ljust(max(end, len(text) + 1))
    return text.rstrip()


def _table(model: Any, rows: list) -> str:
    width = sum(_WIDTHS)
    lines = [f'Model: "{type(model).__name__}"', "_" * width,
             _line("Layer (type)", "Output Shape", "Param #"), "=" * width]
    counted = set()
    for module, out in rows:
        has_children = bool(module._modules)
        if has_children and not _own_count(module):
            continue  # containers: their layers have rows of their own
        count = 0 if id(module) in counted else _own_count(module)
        counted.add(id(module))
        name = f"{module._path or type(model).__name__.lower()} ({type(module).__name__})"
        lines.append(_line(name, _shape_text(out), f"{count:,}"))
    total, trainable, frozen, nbytes = _count(model)
    per = nbytes / total if total else 4
    lines += ["=" * width,
              f"Total params: {total:,} ({_bytes_text(total * per)})",
              f"Trainable params: {trainable:,} ({_bytes_text(trainable * per)})",
              f"Non-trainable params: {frozen:,} ({_bytes_text(frozen * per)})",
              "_" * width]
    return "\n".join(lines)


# --------------------------------------------------------------------------- Keras 3's boxed table
# Keras 3 (keras.Model.summary) draws its table with box characters, in these column widths
# (the text of a cell is two narrower: a space each side); a graph that is not a plain chain
# gets a fourth column, "Connected to", and narrower columns.
CHAIN_WIDTHS = (33, 24, 15)
GRAPH_WIDTHS = (21, 19, 12, 19)


def box_table(title: str, header: list[str], rows: list[list[str]], widths: tuple, totals: tuple) -> str:
    """Keras 3's summary table: ``rows`` of cells (the third, the parameter count, right-aligned),
    long cells wrapped at spaces, a word too long for its column cut with an ellipsis."""
    right = {2}
    rule = lambda left, mid, end, fill: left + mid.join(fill * w for w in widths) + end  # noqa: E731
    lines = [f'Model: "{title}"', rule("┏", "┳", "┓", "━"), _box_row("┃", header, widths, right)[0],
             rule("┡", "╇", "┩", "━")]
    for i, row in enumerate(rows):
        if i:
            lines.append(rule("├", "┼", "┤", "─"))
        lines += _box_row("│", row, widths, right)
    lines.append(rule("└", "┴", "┘", "─"))
    total, trainable, frozen, nbytes = totals
    per = nbytes / total if total else 4
    lines += [f" Total params: {total:,} ({_bytes_text(total * per)})",
              f" Trainable params: {trainable:,} ({_bytes_text(trainable * per)})",
              f" Non-trainable params: {frozen:,} ({_bytes_text(frozen * per)})"]
    return "\n".join(lines)


def _box_row(bar: str, cells: list[str], widths: tuple, right: set) -> list[str]:
    wrapped = [_wrap(cell, w - 2) for cell, w in zip(cells, widths)]
    height = max(len(w) for w in wrapped)
    out = []
    for k in range(height):
        parts = []
        for i, (lines, w) in enumerate(zip(wrapped, widths)):
            text = lines[k] if k < len(lines) else ""
            parts.append(" " + (text.rjust(w - 2) if i in right else text.ljust(w - 2)) + " ")
        out.append(bar + bar.join(parts) + bar)
    return out


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if len(word) > width:
            word = word[:width - 1] + "…"
        if current and len(current) + 1 + len(word) <= width:
            current += " " + word
        else:
            if current:
                lines.append(current)
            current = word
    return lines + [current]
