"""Series-parallel reduction: shrink the flow network before it is solved.

Exported networks are mostly chains of layers with skips around some of them. Two
rules shrink them without changing any s-t flow: a vertex with one edge in and one
out joins its edges in *series* (capacity: the smaller), and two edges between the
same vertices join in *parallel* (capacity: the sum). Applied until neither fits, a
residual MLP of any depth becomes one edge; what remains (the *core*) is solved by a
max-flow algorithm. Each core edge keeps the tree of parts it was made of, so cuts and
"what if this tensor were gone" questions are answered inside the tree.

Cost: O(V + E) dict operations.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from onnx_flow.network import SINK, SOURCE, FlowNetwork

__all__ = ["UNBOUNDED", "Capacity", "CoreEdge", "Part", "Reduced", "reduce"]

#: Capacity of joins and unknown-width tensors. Flows stay finite because every data
#: input and output has a known width.
UNBOUNDED = math.inf

#: An int, or :data:`UNBOUNDED`.
Capacity = int | float


class Part:
    """A piece of the network between two vertices: one edge, or parts in series/parallel."""

    __slots__ = ("capacity", "children", "kind", "parent", "tensor", "_without")

    def __init__(
        self, kind: str, capacity: Capacity, tensor: str | None, children: deque[Part]
    ) -> None:
        self.kind = kind
        """``edge``, ``series`` or ``parallel``."""
        self.capacity = capacity
        self.tensor = tensor
        """The tensor an ``edge`` part splits (``None`` for joins and composites)."""
        self.children = children
        self.parent: Part | None = None
        self._without: tuple[Capacity, int, Capacity] | None = None

    def near_inputs(self) -> Iterator[str]:
        """Tensors of this part's minimum cut nearest the inputs, for a saturated part."""
        yield from self._cut(reversed_order=False)

    def near_outputs(self) -> Iterator[str]:
        """Tensors of this part's minimum cut nearest the outputs, for a saturated part."""
        yield from self._cut(reversed_order=True)

    def _cut(self, *, reversed_order: bool) -> Iterator[str]:
        if self.kind == "edge":
            if self.tensor is not None:
                yield self.tensor
        elif self.kind == "parallel":
            # A saturated parallel part has every branch saturated: each holds a cut.
            for child in self.children:
                yield from child._cut(reversed_order=reversed_order)
        else:
            # Flow in series is the narrowest child's; a residual search from the inputs
            # stops at the first such child, one from the outputs at the last.
            order = reversed(self.children) if reversed_order else iter(self.children)
            narrowest = next(child for child in order if child.capacity == self.capacity)
            yield from narrowest._cut(reversed_order=reversed_order)

    def capacity_with(self, child: Part, capacity: Capacity) -> Capacity:
        """This part's capacity if ``child``'s were lowered to ``capacity``."""
        if self.kind == "parallel":
            if child.capacity == UNBOUNDED:
                others = sum(c.capacity for c in self.children if c is not child)
                return others + capacity
            return self.capacity - child.capacity + capacity
        smallest, count, second = self._minimum_without()
        rest = second if child.capacity == smallest and count == 1 else smallest
        return min(rest, capacity)

    def _minimum_without(self) -> tuple[Capacity, int, Capacity]:
        """(smallest child capacity, how many children have it, the next larger one)."""
        if self._without is None:
            capacities = [c.capacity for c in self.children]
            smallest = min(capacities)
            larger = [c for c in capacities if c > smallest]
            self._without = (smallest, capacities.count(smallest), min(larger, default=UNBOUNDED))
        return self._without


def _edge_part(capacity: int | None, tensor: str | None) -> Part:
    return Part("edge", UNBOUNDED if capacity is None else capacity, tensor, deque())


def _compose(kind: str, first: Part, second: Part) -> Part:
    """Join two parts in series (``first`` then ``second``) or in parallel.

    Both parts are consumed: a composite of the same kind absorbs the other part's
    children in place, the smaller list into the larger, so that a chain of n layers
    costs O(n log n) instead of O(n^2) to build.
    """
    capacity = (
        min(first.capacity, second.capacity)
        if kind == "series"
        else first.capacity + second.capacity
    )
    first_flat, second_flat = first.kind == kind, second.kind == kind
    if first_flat and (not second_flat or len(first.children) >= len(second.children)):
        part, moved = first, second.children if second_flat else deque([second])
        part.children.extend(moved)
    elif second_flat:
        part, moved = second, first.children if first_flat else deque([first])
        part.children.extendleft(reversed(moved))
    else:
        part = Part(kind, capacity, None, deque([first, second]))
        moved = part.children
    for child in moved:
        child.parent = part
    part.capacity = capacity
    return part


@dataclass(frozen=True, slots=True)
class CoreEdge:
    """An edge of the reduced network and the parts it stands for."""

    tail: int
    head: int
    part: Part


@dataclass(frozen=True, slots=True)
class Reduced:
    """The core network left after reduction, and where each tensor went."""

    edges: tuple[CoreEdge, ...]
    leaves: dict[str, Part]
    """Tensor -> its edge part, for tensors on some path from the inputs to the sinks."""
    inputs: tuple[str, ...]
    """Data inputs on some path to the sinks kept (what the outputs depend on)."""


def reduce(network: FlowNetwork, *, outputs: Iterable[str]) -> Reduced:
    """Reduce the network with only ``outputs`` joined to the sink.

    Edges on no path from the source to the sink are dropped first: a tensor that no
    kept output depends on plays no part in the flow.
    """
    dropped_sinks = set(network.sink_edges.values()) - {
        network.sink_edges[name] for name in outputs if name in network.sink_edges
    }
    edges = [
        (index, edge)
        for index, edge in enumerate(network.edges)
        if index not in dropped_sinks
    ]
    alive = _on_source_sink_paths(network.vertex_count, [(e.tail, e.head) for _, e in edges])
    graph = _Multigraph()
    leaves: dict[str, Part] = {}
    for _, edge in edges:
        if alive[edge.tail] and alive[edge.head]:
            part = _edge_part(edge.capacity, edge.tensor)
            if edge.tensor is not None:
                leaves[edge.tensor] = part
            graph.add(edge.tail, edge.head, part)
    graph.reduce()
    inputs = tuple(
        name
        for name, index in network.source_edges.items()
        if alive[network.edges[index].head] and alive[SOURCE]
    )
    return Reduced(edges=tuple(graph.core()), leaves=leaves, inputs=inputs)


def _on_source_sink_paths(vertex_count: int, arcs: list[tuple[int, int]]) -> list[bool]:
    """Which vertices lie on some path from SOURCE to SINK."""
    forward: list[list[int]] = [[] for _ in range(vertex_count)]
    backward: list[list[int]] = [[] for _ in range(vertex_count)]
    for tail, head in arcs:
        forward[tail].append(head)
        backward[head].append(tail)
    from_source = _reach(SOURCE, forward)
    to_sink = _reach(SINK, backward)
    return [a and b for a, b in zip(from_source, to_sink)]


def _reach(start: int, adjacency: list[list[int]]) -> list[bool]:
    seen = [False] * len(adjacency)
    seen[start] = True
    stack = [start]
    while stack:
        for neighbour in adjacency[stack.pop()]:
            if not seen[neighbour]:
                seen[neighbour] = True
                stack.append(neighbour)
    return seen


class _Multigraph:
    """Edges keyed by id with in/out adjacency; parallel edges merge as they are added."""

    def __init__(self) -> None:
        self._ends: dict[int, tuple[int, int]] = {}
        self._parts: dict[int, Part] = {}
        self._out: dict[int, dict[int, None]] = {}
        self._in: dict[int, dict[int, None]] = {}
        self._between: dict[tuple[int, int], int] = {}
        self._next_id = 0
        self._pending: deque[int] = deque()

    def add(self, tail: int, head: int, part: Part) -> None:
        existing = self._between.get((tail, head))
        if existing is not None:
            self._parts[existing] = _compose("parallel", self._parts[existing], part)
            self._pending.extend((tail, head))
            return
        edge = self._next_id
        self._next_id += 1
        self._ends[edge] = (tail, head)
        self._parts[edge] = part
        self._out.setdefault(tail, {})[edge] = None
        self._in.setdefault(head, {})[edge] = None
        self._out.setdefault(head, {})
        self._in.setdefault(tail, {})
        self._between[(tail, head)] = edge
        self._pending.extend((tail, head))

    def _remove(self, edge: int) -> Part:
        tail, head = self._ends.pop(edge)
        del self._out[tail][edge]
        del self._in[head][edge]
        del self._between[(tail, head)]
        return self._parts.pop(edge)

    def reduce(self) -> None:
        """Apply the series rule until no vertex has exactly one edge in and one out."""
        while self._pending:
            vertex = self._pending.popleft()
            if vertex in (SOURCE, SINK):
                continue
            incoming, outgoing = self._in.get(vertex), self._out.get(vertex)
            if not incoming or not outgoing or len(incoming) != 1 or len(outgoing) != 1:
                continue
            (first,), (second,) = incoming, outgoing
            tail, head = self._ends[first][0], self._ends[second][1]
            part = _compose("series", self._remove(first), self._remove(second))
            del self._in[vertex], self._out[vertex]
            self.add(tail, head, part)

    def core(self) -> Iterator[CoreEdge]:
        for edge, (tail, head) in self._ends.items():
            yield CoreEdge(tail, head, self._parts[edge])
