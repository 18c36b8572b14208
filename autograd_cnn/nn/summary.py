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
