"""What each node of a picture stands for (a *unit*), and how a graph too big to lay out quickly
is folded before Graphviz sees it.

A unit is one op, every op of one ``nn.Module`` (``collapse="module"``), a run of identical
blocks drawn once with "×N", or the elided middle of a long graph. Graphviz's ``dot`` spends
more than linear time on a long graph (its placement step solves one network-simplex problem over
every node), so the renderer first measures the picture in nodes and, past ``FOLD_LIMIT``, folds
it with these rules, each applied only while the picture is still too big:

1. module collapse: one node per ``nn.Module`` layer, then per block, per stage (shorter paths);
2. repeats: a run of consecutive units that do the same thing (the same ops with the same
   shapes: a ResNet stage's blocks, a deep MLP's layers) becomes one node marked "×N";
3. elision: the middle of what is left becomes one node "… N ops …", keeping the first and
   the last units.

``fold=False`` draws everything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby

from ..errors import ArgumentError
from .trace import OpNode, TensorNode, Trace

FOLD_LIMIT = 1200  # nodes of a "both" picture that dot lays out in about a second
MAX_PERIOD = 8  # the longest block of units (ops or modules) that the repeat rule looks for


@dataclass(eq=False)
class Unit:
    """What one node of a picture stands for: one op, or several ops drawn as one box."""

    id: str
    ops: list[OpNode]
    module: str | None = None  # the module path (or the label of a folded run); None: one op
    repeat: int = 1  # a run of this many identical blocks, drawn once
    elided: bool = False  # the middle of a long graph, drawn as a count
    absorbed: list[TensorNode] = field(default_factory=list)  # leaves drawn inside
    inputs: list[TensorNode] = field(default_factory=list)  # tensors from outside

    @property
    def output(self) -> TensorNode:
        return self.ops[-1].output

    @property
    def folded(self) -> bool:
        return self.repeat > 1 or self.elided

    def title(self) -> str:
        if self.elided:
            return f"… {len(self.ops):,} ops …"
        if self.module is None:
            return self.ops[0].name
        names = list(dict.fromkeys(op.name for op in self.ops))
        text = f"{' → '.join(names[:4])}{' …' if len(names) > 4 else ''}"
        if self.module:
            text = f"{self.module}: {text}"
        return f"{text}  ×{self.repeat}" if self.repeat > 1 else text


def build_units(tr: Trace, collapse: str | None, depth: int | None) -> list[Unit]:
    """One unit per op, or with ``collapse="module"`` one per module path (cut at ``depth``)."""
    if collapse not in (None, "module"):
        raise ArgumentError(f"visual: collapse must be None or \"module\", got {collapse!r}")
    if depth is not None and (not isinstance(depth, int) or depth < 1):
        raise ArgumentError(f"visual: collapse_depth must be a positive int or None, got {depth!r}")
    units: list[Unit] = []
    for op in tr.ops:
        key = None
        if collapse == "module" and op.scope:
            key = ".".join(op.scope.split(".")[:depth]) if depth else op.scope
        if key is None:
            units.append(Unit(op.id, [op]))
        elif units and units[-1].module == key:
            units[-1].ops.append(op)
        else:
            # A module whose own ops sit between its children's (a residual block's add) gets one
            # unit per stretch, so the picture keeps the order of forward and has no cycle.
            units.append(Unit(f"m{sum(u.module is not None for u in units)}", [op], module=key))
    return connect(tr, units)


def connect(tr: Trace, units: list[Unit]) -> list[Unit]:
    """Fill in each unit's inputs (tensors from outside) and the leaves drawn inside it: a
    module's own parameters, and every leaf that only a folded unit reads."""
    unit_of = {op.id: u for u in units for op in u.ops}
    consumers: dict[str, set] = {}
    for op in tr.ops:
        for t in op.inputs:
            consumers.setdefault(t.id, set()).add(unit_of[op.id].id)
    for u in units:
        u.inputs, u.absorbed = [], []
        seen: set = set()
        for op in u.ops:
            for t in op.inputs:
                if t.id in seen:
                    continue
                seen.add(t.id)
                inside = t.producer is not None and unit_of[t.producer.id] is u
                own = t.producer is None and consumers[t.id] == {u.id}
                if u.module is not None and own and (u.folded or t.role == "parameter"):
                    u.absorbed.append(t)
                elif not inside:
                    u.inputs.append(t)
    return units


# --------------------------------------------------------------------------- measuring


def picture_size(tr: Trace, units: list[Unit], kind: str) -> int:
    """The number of nodes a picture of ``units`` hands to dot (tensors, ops, steps, gradients)."""
    absorbed = {t.id for u in units for t in u.absorbed}
    leaves = [t for t in tr.tensors if t.producer is None and t.id not in absorbed]
    outputs = sum(1 for u in units if u.module is None)  # an op's output gets its own box
    forward = len(units) + len(leaves) + outputs
    backward = len(units) + sum(1 for t in leaves if t.role == "parameter") + 1
    return {"forward": forward, "backward": backward}.get(kind, forward + backward)


# --------------------------------------------------------------------------- folding


def fold_units(tr: Trace, units: list[Unit], collapse: str | None, depth: int | None, kind: str,
               limit: int = FOLD_LIMIT) -> tuple[list[Unit], str]:
    """``units`` folded until the picture has at most ``limit`` nodes, and a line that says what
    was folded (empty when nothing was)."""
    if picture_size(tr, units, kind) <= limit:
        return units, ""
    paths = [op.scope.split(".") for op in tr.ops if op.scope]
    # The caller's level, then coarser and coarser module collapse: each layer, shorter paths.
    levels: list[tuple[str | None, int | None]] = [(collapse, depth)]
    if paths:
        if collapse is None:
            levels.append(("module", None))
        deepest = depth if collapse == "module" and depth else max(len(path) for path in paths)
        levels += [("module", d) for d in range(deepest - 1, 0, -1)]
    runs = 0
    for level, (how, cut) in enumerate(levels):
        if level > 0:
            units = build_units(tr, how, cut)
            if picture_size(tr, units, kind) <= limit:
                break
        if how is not None or not paths:  # in a model blocks are modules: runs of ops would cut across them
            units, runs = fold_repeats(tr, units)
        if picture_size(tr, units, kind) <= limit:
            break
    done = []
    if level > 0:
        done.append("one node per " + ("layer" if cut is None else f"module path of {cut} part{'s' * (cut > 1)}"))
    if runs:
        done.append(f"{runs} run{'s' * (runs > 1)} of repeated blocks drawn once (×N)")
    size = picture_size(tr, units, kind)
    if size > limit:
        units, hidden = elide(tr, units, limit * len(units) // size)
        done.append(f"{hidden:,} ops in the middle drawn as one node")
    note = (f"Folded to lay out fast ({len(tr.ops):,} ops): {'; '.join(done)}. "
            "Pass fold=False to draw every op.")
    return units, note


def signature(u: Unit) -> tuple:
    """What a unit does, for finding repeats: its ops with their output shapes, and its parameters' shapes."""
    ops = tuple((op.name, tuple(op.output.tensor.shape)) for op in u.ops)
    return ops + tuple(tuple(t.tensor.shape) for t in u.absorbed)


def fold_repeats(tr: Trace, units: list[Unit]) -> tuple[list[Unit], int]:
    """Runs of identical blocks, each as one unit marked ×N: first runs of sibling modules (the
    blocks ``3``, ``4``, … of a ResNet stage, at the module depth that folds most), then runs of a
    repeated pattern of 1 to MAX_PERIOD units (a deep MLP's Linear, Sigmoid, Linear, …)."""
    best, runs = units, 0
    deepest = max((len(u.module.split(".")) for u in units if u.module), default=0)
    for d in range(1, deepest):
        blocks = [list(group) for _, group in groupby(units, key=lambda u: _prefix(u, d))]
        folded, count = _fold_runs(blocks, [_prefix(b[0], d) for b in blocks])
        if len(folded) < len(best):
            best, runs = folded, count
    units, count = _fold_runs([[u] for u in best], [u.module or "" for u in best], MAX_PERIOD)
    runs += count
    return (connect(tr, units) if runs else units), runs


def _prefix(u: Unit, d: int) -> str | None:
    """The module block (path cut to ``d`` parts) that ``u`` is or lies inside; None for a unit of
    no module or of a shorter path."""
    parts = (u.module or "").split(".")
    return ".".join(parts[:d]) if u.module and len(parts) >= d else None


def _fold_runs(blocks: list[list[Unit]], names: list[str | None], max_period: int = 1) -> tuple[list[Unit], int]:
    """Each run of at least two repetitions of 1 to ``max_period`` consecutive equal blocks, as one
    unit (at each place the period that covers most, the shorter on a tie); blocks named None
    never fold."""
    signatures = [tuple(signature(u) for u in b) for b in blocks]
    out: list[Unit] = []
    runs = i = 0
    while i < len(blocks):
        period, k = 1, 1
        for p in range(1, max_period + 1):
            n = 1
            while (i + (n + 1) * p <= len(blocks) and None not in names[i:i + (n + 1) * p]
                   and signatures[i + n * p:i + (n + 1) * p] == signatures[i:i + p]):
                n += 1
            if n >= 2 and p * n > period * k:
                period, k = p, n
        if k < 2:
            out.extend(blocks[i])
            i += 1
            continue
        first, last = names[i], names[i + k * period - 1]
        label = f"{first} … {last}" if first and last else ""
        ops = [op for b in blocks[i:i + k * period] for u in b for op in u.ops]
        out.append(Unit(f"f{ops[0].id}", ops, module=label, repeat=k))
        runs += 1
        i += k * period
    return out, runs


def elide(tr: Trace, units: list[Unit], keep: int) -> tuple[list[Unit], int]:
    """Keep about ``keep`` units, half from the start and half from the end; the rest become one unit."""
    side = max(4, keep // 2 - 1)
    if len(units) <= 2 * side + 1:
        return units, 0
    middle = units[side:len(units) - side]
    hidden = Unit("elided", [op for u in middle for op in u.ops], module="", elided=True)
    return connect(tr, units[:side] + [hidden] + units[len(units) - side:]), len(hidden.ops)
