"""Reading a recorded graph: the order backward runs its nodes in, and ``graph_of(output)``, the
public way to look at a graph (what ``visual``, the exporters and the tests read)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import ArgumentTypeError
from ..tensor import Tensor
from .function import Context, UnkeptTensor


def topological_order(roots: Iterable[Context]) -> list:
    """Nodes reachable from ``roots``, each after every node that consumes one of its outputs."""
    order, visited = [], set()
    stack = [(node, False) for node in roots]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        for t in node.inputs:
            parent = t.grad_fn
            if parent is not None and parent not in visited:
                stack.append((parent, False))
    order.reverse()  # consumers before producers
    return order


class Graph:
    """The graph behind one tensor, as backward sees it (``graph_of(output)``).

    ``nodes`` lists the op nodes (``Context``) in the order backward runs them: each after
    every node that consumes one of its outputs, so ``reversed(graph.nodes)`` is forward's order.
    ``output_of(node, i)`` is output ``i`` of that node (a ``ReleasedTensor`` where a backward
    without ``retain_graph`` let it go, an ``UnkeptTensor`` where no node kept it and the program
    no longer holds it; None for an output of several that nothing here used),
    ``outputs_of(node)`` all of them; ``leaves`` the tensors no op made, in first-use order.
    Reading a graph changes nothing in it.
    """

    def __init__(self, output: Tensor) -> None:
        if not isinstance(output, Tensor):
            raise ArgumentTypeError(f"graph_of: expected a Tensor, got {type(output).__name__}")
        self.output = output
        self.nodes: list[Context] = topological_order([output.grad_fn]) if output.grad_fn is not None else []
        # A node does not hold its outputs; each output is the input of a later node, or the
        # root. Where a freeing backward left a ReleasedTensor in one place, the tensor itself
        # is taken from any other node that still holds it.
        self._made: dict[tuple, Any] = {(id(output.grad_fn), output.output_nr): output}
        for node in self.nodes:
            for t in node.inputs:
                if type(t) is UnkeptTensor:  # the tensor itself, where the program still holds it
                    t = t.live()
                if t.grad_fn is not None:
                    key = (id(t.grad_fn), t.output_nr)
                    if not isinstance(self._made.get(key), Tensor):
                        self._made[key] = t
        leaves = {id(t): t for node in reversed(self.nodes) for t in node.inputs if t.grad_fn is None}
        self.leaves: list[Tensor] = list(leaves.values())

    def output_of(self, node: Context, index: int = 0) -> Any:
        """Output ``index`` of ``node`` (None where nothing in this graph used it)."""
        return self._made.get((id(node), index))

    def outputs_of(self, node: Context) -> tuple:
        """Every output of ``node``, in forward's order (None for one nothing here used)."""
        return tuple(self._made.get((id(node), i)) for i in range(node.n_outputs))

    def __iter__(self) -> Iterator[Context]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)


def graph_of(output: Tensor) -> Graph:
    """The nodes behind ``output`` in backward's order, with their inputs, saved values, scope and
    un-broadcast steps: the public way to read a recorded graph."""
    return Graph(output)
