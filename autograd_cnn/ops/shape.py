"""Ops that move elements without arithmetic: reshape, transpose, indexing, concat, split, pad.

split, chunk and unbind are one node with several outputs (``Split``, ``Unbind``): each piece is
an output of that node, and backward joins the pieces' gradients (zeros for a piece no path
used) with the op that undoes it, ``Concat`` or ``Stack``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import checks
from ..autograd import GRAD_OUT, Function
from ..backends import Backend
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, shape_str
from ..tensor import Tensor, as_tensor, cast

# getitem and to_backend stay out of F: Tensor's indexing and .to() call them.
__all__ = ["chunk", "concat", "flatten", "pad", "reshape", "split", "stack", "transpose", "unbind"]


class Reshape(Function):
    """y = a with a new shape"""
    rules = (f"∂L/∂a = {GRAD_OUT} reshaped to a's shape",)
    @staticmethod
    def forward(ctx, a, *, shape):
        ctx.in_shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ShapeError(f"Reshape: cannot reshape {shape_str(a.shape)} ({a.size} elements) "
                             f"to {shape_str(shape)}") from None

    @staticmethod
    def backward(ctx, gy):
        return gy.reshape(ctx.in_shape)


class Transpose(Function):
    """y = a with its axes permuted (reversed when axes is None)"""
    rules = (f"∂L/∂a = {GRAD_OUT} with the axes permuted back",)
    @staticmethod
    def forward(ctx, a, *, axes):
        if axes is not None and sorted(ax % max(a.ndim, 1) for ax in axes) != list(range(a.ndim)):
            raise ShapeError(f"Transpose: axes {tuple(axes)} are not a permutation of "
                             f"the {a.ndim} axes of {shape_str(a.shape)}")
        return a.transpose(axes)

    @staticmethod
    def backward(ctx, gy):
        axes = ctx.params["axes"]
        if axes is None:
            return gy.transpose()
        inverse = [0] * len(axes)
        for i, ax in enumerate(axes):
            inverse[ax % len(axes)] = i
        return gy.transpose(tuple(inverse))


def _plain_index(index: Any) -> Any:
    """Tensors and lists inside an index become arrays the backend can use."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    return index


class GetItem(Function):
    """y = a[index] (slices, integers, integer arrays, None, Ellipsis)"""
    rules = (f"∂L/∂a = zeros with {GRAD_OUT} added at the index",)
    @staticmethod
    def forward(ctx, a, *, index):
        ctx.in_shape = a.shape
        try:
            return a[index]
        except IndexError as err:
            raise ShapeError(f"GetItem: index {index!r} does not fit shape {shape_str(a.shape)}: {err}") from None

    @staticmethod
    def backward(ctx, gy):
        return ScatterAdd.apply(gy, shape=ctx.in_shape, index=ctx.params["index"])


class ScatterAdd(Function):
    """y = zeros(shape) with g added at index (the backward of a[index])"""
    rules = (f"∂L/∂a = {GRAD_OUT} read back at the index",)
    @staticmethod
    def forward(ctx, g, *, shape, index):
        out = ctx.xp.zeros(shape, dtype=g.dtype)
        ctx.backend.scatter_add(out, index, g)
        return out

    @staticmethod
    def backward(ctx, gy):
        return getitem(gy, ctx.params["index"])


class Concat(Function):
    """y = a_1, a_2, ... joined along an existing axis"""
    rules = (f"∂L/∂each = its slice of {GRAD_OUT}",)
    @staticmethod
    def forward(ctx, *arrays, axis):
        _same_rank("Concat", arrays, axis)
        ctx.sizes = [a.shape[axis] for a in arrays]
        return ctx.xp.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, gy):
        axis = ctx.params["axis"]
        grads, start = [], 0
        for size in ctx.sizes:
            index = [slice(None)] * gy.ndim
            index[axis] = slice(start, start + size)
            grads.append(gy[tuple(index)])
            start += size
        return tuple(grads)


class Stack(Function):
    """y = a_1, a_2, ... joined along a new axis"""
    rules = (f"∂L/∂each = its slice of {GRAD_OUT}",)
    @staticmethod
    def forward(ctx, *arrays, axis):
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ShapeError("Stack: every tensor needs the same shape, got "
                             + ", ".join(shape_str(a.shape) for a in arrays))
        return ctx.xp.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx, gy):
        axis = ctx.params["axis"]
        index, grads = [slice(None)] * gy.ndim, []
        for i in range(gy.shape[axis]):
            index[axis] = i
            grads.append(gy[tuple(index)])
        return tuple(grads)


class Split(Function):
    """y_1, y_2, ... = the pieces of a between the cuts along an axis (several outputs, one node)"""
    rules = (f"∂L/∂a = the pieces' {GRAD_OUT} joined along the axis (zeros for an unused piece)",)
    @staticmethod
    def forward(ctx, a, *, bounds, axis):
        index = [slice(None)] * a.ndim
        pieces = []
        for start, stop in zip(bounds[:-1], bounds[1:]):
            index[axis] = slice(start, stop)
            pieces.append(a[tuple(index)])
        return tuple(pieces)

    @staticmethod
    def backward(ctx, *grads):
        return Concat.apply(*grads, axis=ctx.params["axis"])


class Unbind(Function):
    """y_i = a[..., i, ...]: a taken apart along an axis, which goes (several outputs, one node)"""
    rules = (f"∂L/∂a = the pieces' {GRAD_OUT} stacked along the axis (zeros for an unused piece)",)
    @staticmethod
    def forward(ctx, a, *, axis):
        index: list = [slice(None)] * a.ndim
        pieces = []
        for i in range(a.shape[axis]):
            index[axis] = i
            pieces.append(a[tuple(index)])
        return tuple(pieces)

    @staticmethod
    def backward(ctx, *grads):
        return Stack.apply(*grads, axis=ctx.params["axis"])


def _same_rank(op: str, arrays: Any, axis: int) -> None:
    if not arrays:
        raise ShapeError(f"{op}: needs at least one tensor")
    first = arrays[0]
    for a in arrays[1:]:
        rest_a = [n for i, n in enumerate(a.shape) if i != axis % a.ndim]
        rest_f = [n for i, n in enumerate(first.shape) if i != axis % first.ndim]
        if a.ndim != first.ndim or rest_a != rest_f:
            raise ShapeError(f"{op}: shapes {shape_str(first.shape)} and {shape_str(a.shape)} "
                             f"differ outside axis {axis}")


class Pad(Function):
    """y = a with ``value`` added around it, pad_width as in numpy.pad"""
    rules = (f"∂L/∂a = {GRAD_OUT} without the padding",)
    @staticmethod
    def forward(ctx, a, *, pad_width, value):
        return ctx.xp.pad(a, pad_width, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, gy):
        index = tuple(slice(lo, n - hi) for (lo, hi), n in zip(ctx.params["pad_width"], gy.shape))
        return gy[index]


class ToBackend(Function):
    """y = a copied to another backend (host <-> GPU)"""
    rules = (f"∂L/∂a = {GRAD_OUT} moved back to a's backend",)
    @staticmethod
    def forward(ctx, a, *, target):
        ctx.out_backend = target
        return target.from_host(ctx.backend.to_host(a))

    @staticmethod
    def backward(ctx, gy):
        return to_backend(gy, ctx.backend)  # the backend the input lives on


def _ints(op: str, name: str, value: Any) -> tuple:
    """An int or a sequence of ints (a shape, axes) as a tuple; never bools, floats or text."""
    items = (value,) if checks.is_int(value) else value
    if not isinstance(items, (tuple, list)) or not all(checks.is_int(n) for n in items):
        raise ArgumentTypeError(f"{op}: {name} must be an int or a tuple of ints, got {value!r}")
    return tuple(int(n) for n in items)


def reshape(a: Tensor, shape: tuple) -> Tensor:
    return Reshape.apply(a, shape=_ints("reshape", "shape", shape))


def transpose(a: Tensor, axes: tuple | None = None) -> Tensor:
    return Transpose.apply(a, axes=None if axes is None else _ints("transpose", "axes", axes))


def flatten(x: Tensor, start_axis: int = 1) -> Tensor:
    """Join the axes from ``start_axis`` on into one (the batch axis 0 stays by default;
    ``Tensor.flatten`` passes its own default, 0)."""
    x = as_tensor("flatten", x)
    shape = x.shape
    checks.integer("flatten", "start_axis", start_axis)
    if not -max(len(shape), 1) <= start_axis < max(len(shape), 1):
        raise ShapeError(f"flatten: start_axis {start_axis} is out of range for a tensor of shape "
                         f"{shape_str(shape)}")
    start = start_axis % max(len(shape), 1)
    lead = shape[:start]
    rest = 1
    for n in shape[start:]:
        rest *= n
    return reshape(x, lead + (rest,))


def getitem(a: Tensor, index: Any) -> Tensor:
    return GetItem.apply(a, index=_plain_index(index))


def _parts(op: str, tensors: Any, axis: Any) -> tuple:
    """The tensors to join, a list or tuple (a lone tensor would be split into its rows)."""
    if not isinstance(tensors, (list, tuple)):
        raise ArgumentTypeError(f"{op}: tensors must be a list or tuple of tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ShapeError(f"{op}: needs at least one tensor, got an empty {type(tensors).__name__}")
    checks.integer(op, "axis", axis)
    return tuple(tensors)


def concat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    return Concat.apply(*_parts("concat", tensors, axis), axis=axis)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    return Stack.apply(*_parts("stack", tensors, axis), axis=axis)


def _split_axis(op: str, x: Any, axis: Any) -> tuple:
    """x as a tensor of at least one axis, and ``axis`` checked and made non-negative."""
    x = as_tensor(op, x)
    checks.integer(op, "axis", axis)
    if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"{op}: axis {axis} is out of range for a tensor of shape {shape_str(x.shape)}")
    return x, axis % x.ndim


def split(x: Tensor, sections_or_indices: Any, axis: int = 0) -> tuple:
    """``x`` cut along ``axis``, as NumPy's ``np.split``: an int N gives N equal pieces (N must
    divide the axis), a list of indices cuts before each. A tuple of tensors made by one node."""
    x, axis = _split_axis("split", x, axis)
    size = x.shape[axis]
    if checks.is_int(sections_or_indices):
        n = int(sections_or_indices)
        if n < 1 or size % n:
            raise ShapeError(f"split: {n} equal pieces of axis {axis} of {shape_str(x.shape)} (length {size}) "
                             "do not exist; give a number that divides it, or a list of indices to cut at "
                             f"(chunk({n}) allows a shorter last piece)")
        bounds = tuple(range(0, size + 1, size // n)) if size else (0,) * (n + 1)
    elif isinstance(sections_or_indices, (list, tuple)) and all(checks.is_int(i) for i in sections_or_indices):
        # As NumPy: negative indices count from the end, and each index is clipped to the axis.
        cuts = [min(max(int(i) + size if i < 0 else int(i), 0), size) for i in sections_or_indices]
        bounds = (0, *cuts, size)
        if any(a > b for a, b in zip(bounds, bounds[1:])):
            raise ArgumentError(f"split: the indices {list(sections_or_indices)} must not decrease (along axis "
                                f"{axis} of length {size}); the pieces would overlap")
    else:
        raise ArgumentTypeError(f"split: sections_or_indices must be an int or a list of ints, "
                                f"got {sections_or_indices!r}")
    return Split.apply(x, bounds=bounds, axis=axis)


def chunk(x: Tensor, n: int, axis: int = 0) -> tuple:
    """``x`` in ``n`` pieces along ``axis``, as ``torch.chunk``: each of ceil(length / n), the last
    shorter where n does not divide the length (so fewer than n pieces can come back)."""
    x, axis = _split_axis("chunk", x, axis)
    n = checks.integer("chunk", "n", n, 1)
    size = x.shape[axis]
    step = max(-(-size // n), 1)
    return Split.apply(x, bounds=tuple(range(0, size, step)) + (size,) if size else (0, 0), axis=axis)


def unbind(x: Tensor, axis: int = 0) -> tuple:
    """The slices of ``x`` along ``axis``, that axis removed: ``x[0], x[1], ...`` as one node."""
    x, axis = _split_axis("unbind", x, axis)
    return Unbind.apply(x, axis=axis)


def pad(a: Tensor, pad_width: Any, value: float = 0.0) -> Tensor:
    """Pad with a constant; ``pad_width`` is an int, a (before, after) pair, or one per axis."""
    a = as_tensor("pad", a)
    ndim = len(a.shape)
    if not checks.is_real(value):
        raise ArgumentTypeError(f"pad: value must be a number, got {value!r}")
    if a.dtype.kind in "iub" and not float(value).is_integer():  # np.pad would cut 1.5 to 1
        raise ArgumentError(f"pad: value {value!r} cannot fill an {a.dtype} tensor; give a whole number")
    cast("pad", np, np.asarray(value), a.dtype)  # refuses a value the dtype cannot hold (inf, 300 in int8)
    if checks.is_int(pad_width):
        pad_width = ((pad_width, pad_width),) * ndim
    elif isinstance(pad_width, (tuple, list)) and len(pad_width) == 2 and all(checks.is_int(p) for p in pad_width):
        pad_width = (tuple(pad_width),) * ndim
    if not isinstance(pad_width, (tuple, list)) or not all(
            isinstance(p, (tuple, list)) and len(p) == 2 and all(checks.is_int(n) for n in p) for p in pad_width):
        raise ArgumentTypeError(f"pad: pad_width must be an int, a (before, after) pair of ints or one pair per "
                                f"axis, got {pad_width!r}")
    pad_width = tuple((int(lo), int(hi)) for lo, hi in pad_width)
    if len(pad_width) != ndim or any(lo < 0 or hi < 0 for lo, hi in pad_width):
        raise ShapeError(f"pad: pad_width {pad_width} needs one non-negative (before, after) "
                         f"pair per axis of {shape_str(a.shape)}")
    return Pad.apply(a, pad_width=pad_width, value=value)


def to_backend(a: Tensor, target: Backend) -> Tensor:
    return ToBackend.apply(a, target=target)
