"""Series-parallel reduction: shrink the flow network before it is solved.

Exported networks are mostly chains of layers with skips around some of them. Two
rules shrink them without changing any s-t flow: a vertex with one edge in and one
out joins its edges in *series* (capacity: the smaller), and two edges between the
same vertices join in *parallel* (capacity: the sum). Applied until neither fits, a
residual MLP of any depth becomes one edge; what remains (the *core*) is solved by a
max-flow algorithm. Each core edge keeps the tree of parts it was made of, so cuts and
"what if this tensor were gone" questions are answered inside the tree.

The rules look at the wiring only, never at a width: :func:`prepare` builds the trees
of every output set the verdict solves, and :meth:`Prepared.weighed` gives them their
capacities once the widths are known, so a large graph is reduced while its shapes
are still being inferred.

Cost: O((V + E) log E) dict operations at worst (a composite absorbs the smaller of
two child lists), linear for chains, which are merged while the graph is built.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, unique
from itertools import compress, islice

from onnx_flow.flow.network import SINK, SOURCE, FlowNetwork, connect
from onnx_flow.measure.widths import Widths
from onnx_flow.records import Wiring

__all__ = [
    "UNBOUNDED",
    "Capacity",
    "CoreEdge",
    "Part",
    "PartKind",
    "Prepared",
    "Reduced",
    "output_sets",
    "prepare",
    "reduce",
]

#: Capacity of joins and unknown-width tensors. Flows stay finite because every data
#: input and output has a known width.
UNBOUNDED = math.inf

#: An int, or :data:`UNBOUNDED`.
Capacity = int | float


@unique
class PartKind(Enum):
    """How a part is made."""

    CHAIN = "chain"
    """Tensors one after another, each the only reader of the one before."""
    SERIES = "series"
    """Parts one after another."""
    PARALLEL = "parallel"
    """Parts side by side between the same two vertices."""


class Part:
    """A piece of the network between two vertices: a chain of tensors, or parts in
    series or in parallel."""

    __slots__ = (
        "_minimum",
        "capacities",
        "capacity",
        "children",
        "kind",
        "numbers",
        "parent",
        "tensors",
    )

    def __init__(self, kind: PartKind, children: deque[Part]) -> None:
        self.kind = kind
        self.capacity: Capacity = UNBOUNDED
        """Set by :meth:`Reduced.weigh`."""
        self.children = children
        self.tensors: list[str] = []
        """A chain's tensors, in flow order (empty for composites)."""
        self.numbers: list[int] = []
        """A chain's tensors by their number in the network."""
        self.capacities: list[Capacity] = []
        """A chain's tensor capacities, one per tensor (set by :meth:`Reduced.weigh`)."""
        self.parent: Part | None = None
        self._minimum: tuple[Capacity, int, Capacity] | None = None

    @classmethod
    def chain(cls, tensor: str, number: int) -> Part:
        """A chain of one tensor; :func:`reduce` appends the tensors that follow it."""
        part = cls(PartKind.CHAIN, _NO_CHILDREN)
        part.tensors.append(tensor)
        part.numbers.append(number)
        return part

    def cut(self, *, nearest_outputs: bool) -> Iterator[str]:
        """Tensors of this saturated part's minimum cut nearest the inputs or the outputs."""
        if self.kind is PartKind.CHAIN:
            # A residual search from the inputs stops at the first narrowest tensor,
            # one from the outputs at the last.
            last = len(self.capacities) - 1
            positions = range(last, -1, -1) if nearest_outputs else range(last + 1)
            yield self.tensors[next(i for i in positions if self.capacities[i] == self.capacity)]
        elif self.kind is PartKind.PARALLEL:
            # A saturated parallel part has every branch saturated: each holds a cut.
            for child in self.children:
                yield from child.cut(nearest_outputs=nearest_outputs)
        else:
            order = reversed(self.children) if nearest_outputs else iter(self.children)
            narrowest = next(child for child in order if child.capacity == self.capacity)
            yield from narrowest.cut(nearest_outputs=nearest_outputs)

    def cuts(self) -> Iterator[str]:
        """Tensors on some minimum cut of this saturated part: every narrowest tensor of a
        chain, every narrowest child of a series part, every child of a parallel one."""
        if self.kind is PartKind.CHAIN:
            for tensor, capacity in zip(self.tensors, self.capacities, strict=True):
                if capacity == self.capacity:
                    yield tensor
        else:
            for child in self.children:
                if self.kind is PartKind.PARALLEL or child.capacity == self.capacity:
                    yield from child.cuts()

    def capacity_with(self, child: Part, capacity: Capacity) -> Capacity:
        """This part's capacity if ``child``'s were lowered to ``capacity``."""
        if self.kind is PartKind.PARALLEL:
            if child.capacity == UNBOUNDED:
                others = sum(c.capacity for c in self.children if c is not child)
                return others + capacity
            return self.capacity - child.capacity + capacity
        smallest, count, second = self._minimum_without()
        rest = second if child.capacity == smallest and count == 1 else smallest
        return min(rest, capacity)

    def _minimum_without(self) -> tuple[Capacity, int, Capacity]:
        """(smallest child capacity, how many children have it, the next larger one)."""
        if self._minimum is None:
            capacities = [c.capacity for c in self.children]
            smallest = min(capacities)
            larger = [c for c in capacities if c > smallest]
            self._minimum = (smallest, capacities.count(smallest), min(larger, default=UNBOUNDED))
        return self._minimum


#: A chain has no children; all chains share this empty deque and never change it.
_NO_CHILDREN: deque[Part] = deque()

#: An unbounded edge that splits no tensor (from a tensor's fan-out vertex to a reader)
#: is ``None`` rather than a part: in series it leaves the other part as it is, and in
#: parallel it makes the pair unbounded, so the other part can never be cut and losing
#: it loses nothing.
Join = None


def _series(first: Part | None, second: Part | None) -> Part | None:
    if first is None:
        return second
    if second is None:
        return first
    return _compose(PartKind.SERIES, first, second)


def _parallel(first: Part | None, second: Part | None) -> Part | None:
    if first is None or second is None:
        return None
    return _compose(PartKind.PARALLEL, first, second)


def _compose(kind: PartKind, first: Part, second: Part) -> Part:
    """Join two parts in series (``first`` then ``second``) or in parallel.

    Both parts are consumed: a composite of the same kind absorbs the other part's
    children in place, the smaller list into the larger, so that a chain of n layers
    costs O(n log n) instead of O(n^2) to build.
    """
    first_flat, second_flat = first.kind == kind, second.kind == kind
    if first_flat and (not second_flat or len(first.children) >= len(second.children)):
        part, moved = first, second.children if second_flat else deque([second])
        part.children.extend(moved)
    elif second_flat:
        part, moved = second, first.children if first_flat else deque([first])
        part.children.extendleft(reversed(moved))
    else:
        part = Part(kind, deque([first, second]))
        moved = part.children
    for child in moved:
        child.parent = part
    return part


@dataclass(frozen=True, slots=True)
class CoreEdge:
    """An edge of the reduced network and the parts it stands for."""

    tail: int
    head: int
    part: Part | None
    """``None`` for an unbounded join (see :data:`Join`)."""


@dataclass(slots=True)
class Reduced:
    """The core network left after reduction, and where each tensor went.

    Not frozen: :meth:`weigh` gives its parts their capacities in place, once.
    """

    edges: tuple[CoreEdge, ...]
    leaves: dict[str, Part]
    """Tensor -> its chain, for tensors on some path from the inputs to the sinks, in
    graph order. A chain outside every core edge's tree was set beside an unbounded
    join: the flow does not depend on it."""
    inputs: tuple[str, ...]
    """Data inputs on some path to the sinks kept (what the outputs depend on)."""
    roots: tuple[Part, ...]
    """The parts no other part holds: the core edges' and those set beside joins."""

    def weigh(self, capacity: Sequence[int | None]) -> None:
        """Give every part its capacity, in place: ``capacity`` holds the width of each tensor by
        number (``None``: unbounded); a chain has its narrowest, a series part its
        narrowest child, a parallel part the sum of its children."""
        widths = [UNBOUNDED if width is None else width for width in capacity]
        composites = []  # each before its descendants
        pending = list(self.roots)
        while pending:
            part = pending.pop()
            if part.kind is PartKind.CHAIN:
                part.capacities = list(map(widths.__getitem__, part.numbers))
                part.capacity = min(part.capacities)
            else:
                composites.append(part)
                pending.extend(part.children)
        for part in reversed(composites):
            capacities = [child.capacity for child in part.children]
            part.capacity = min(capacities) if part.kind is PartKind.SERIES else sum(capacities)
            part._minimum = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A flow network and its reduction for each output set the verdict solves. The
    record is frozen, its reductions are not: :meth:`weighed` weighs them in place."""

    network: FlowNetwork
    reductions: Mapping[tuple[str, ...], Reduced]
    """Output set (see :func:`output_sets`) -> the network reduced to those outputs."""

    def ending(self, ends: Mapping[str, str]) -> Prepared:
        """This network, not yet weighed, with each output of ``ends`` joined to the sink
        at the tensor it names (a trunk judged apart from its head), reduced again for
        the output sets that hold such an output; the others' reductions are kept."""
        if not ends:
            return self
        index = self.network.index
        outputs = {name: index[ends.get(name, name)] for name in self.network.outputs}
        network = dataclasses.replace(self.network, outputs=outputs)
        reductions = {
            key: reduce(network, outputs=key) if not ends.keys().isdisjoint(key) else reduced
            for key, reduced in self.reductions.items()
        }
        return Prepared(network, reductions)

    def weighed(self, widths: Widths) -> Prepared:
        """The network weighed with ``widths``, and the same reductions, their parts given
        their capacities (in place: a network is prepared to be weighed once)."""
        network = self.network.weighed(widths)
        for reduced in self.reductions.values():
            reduced.weigh(network.capacity)
        return Prepared(network, self.reductions)


def output_sets(outputs: Sequence[str], split: Sequence[str] = ()) -> list[tuple[str, ...]]:
    """The output sets the verdict solves: each graph output and each split tensor
    alone, then all graph outputs together when there are several."""
    sets: list[tuple[str, ...]] = [(name,) for name in (*outputs, *split)]
    if len(outputs) > 1:
        sets.append(tuple(outputs))
    return sets


def prepare(wiring: Wiring, *, split: Sequence[str] = ()) -> Prepared:
    """Wire the flow network (:func:`~onnx_flow.flow.network.connect`) and reduce it for
    each of :func:`output_sets`; no width is needed yet."""
    network = connect(wiring, split=split)
    sets = output_sets(wiring.outputs, split)
    return Prepared(network, {key: reduce(network, outputs=key) for key in sets})


def reduce(network: FlowNetwork, *, outputs: Iterable[str]) -> Reduced:
    """Reduce the network with only ``outputs`` joined to the sink.

    Tensors that none of ``outputs`` depends on are left out first: they play no part
    in the flow. A tensor with one reader is an edge from its producer to that reader;
    one with several readers gets a vertex of its own, entered by its capacity and left
    by an unbounded edge to each reader.
    """
    sinks = {network.outputs[name] for name in outputs if name in network.outputs}
    tensor_alive, vertex_alive = _needed(network, sinks)
    names, producers = network.tensors, network.producer
    reads, readers = network.reads, network.readers
    alive = list(compress(range(len(names)), tensor_alive))
    # Readers of needed tensors are needed too, unless they write only tensors no sink
    # depends on: filter only then.
    if all(islice(vertex_alive, SINK + 1, None)):
        heads = {tensor: list(readers[tensor]) for tensor in alive}
    else:
        heads = {tensor: [v for v in readers[tensor] if vertex_alive[v]] for tensor in alive}
    for tensor in sinks:
        heads[tensor].append(SINK)
    written = [0] * len(reads)
    for producer in map(producers.__getitem__, alive):
        written[producer] += 1
    # Chains first, in one pass: a tensor whose producer reads only the previous tensor
    # of a chain, and which that tensor feeds alone, extends the chain in series.
    leaves: dict[str, Part] = {}
    chains: dict[int, tuple[int, Part]] = {}  # last tensor -> (first producer, chain)
    for tensor in alive:
        name, producer = names[tensor], producers[tensor]
        if producer > SINK and written[producer] == 1:
            read = reads[producer]  # all alive: the producer is
            if len(read) == 1:
                ends = heads[read[0]]
                if len(ends) == 1 and ends[0] == producer:
                    start, part = chains.pop(read[0])
                    part.tensors.append(name)
                    part.numbers.append(tensor)
                    leaves[name] = part
                    chains[tensor] = (start, part)
                    continue
        part = leaves[name] = Part.chain(name, tensor)
        chains[tensor] = (producer, part)
    # A tensor with several readers gets a fan-out vertex, joined to each reader. A
    # reader that reads nothing else and writes one tensor would only pass the join on
    # in series: its chain starts at the fan-out vertex instead (the series rule, applied
    # before the edges exist).
    graph = _Multigraph(len(network.reads))
    fans: dict[int, int] = {}  # tensor -> its fan-out vertex
    for tensor, (start, part) in chains.items():
        if start > SINK and written[start] == 1 and len(reads[start]) == 1:
            start = fans.get(reads[start][0], start)
        ends = heads[tensor]
        if len(ends) == 1:
            graph.add(start, ends[0], part)
            continue
        fan = fans[tensor] = graph.new_vertex()
        graph.add(start, fan, part)
        for end in ends:
            if end == SINK or written[end] != 1 or len(reads[end]) != 1:
                graph.add(fan, end, Join)
    graph.reduce()
    inputs = tuple(names[t] for t in network.inputs if tensor_alive[t])
    edges = tuple(graph.core())
    roots = (*(edge.part for edge in edges if edge.part is not None), *graph.set_aside)
    return Reduced(edges=edges, leaves=leaves, inputs=inputs, roots=roots)


def _needed(network: FlowNetwork, sinks: set[int]) -> tuple[list[bool], list[bool]]:
    """Tensors and operator vertices that some sink tensor depends on."""
    tensor_alive = [False] * len(network.tensors)
    vertex_alive = [False] * len(network.reads)
    stack = list(sinks)
    for tensor in stack:
        tensor_alive[tensor] = True
    while stack:
        vertex = network.producer[stack.pop()]
        if vertex_alive[vertex]:
            continue
        vertex_alive[vertex] = True
        for tensor in network.reads[vertex]:
            if not tensor_alive[tensor]:
                tensor_alive[tensor] = True
                stack.append(tensor)
    return tensor_alive, vertex_alive


class _Multigraph:
    """Edges by id with per-vertex in/out sets; parallel edges merge as they are added."""

    def __init__(self, vertex_count: int) -> None:
        self._tails: list[int] = []
        self._heads: list[int] = []
        self._parts: list[Part | None] = []
        # Most operators sit inside chains and never become vertices: their edge sets
        # are made when first needed.
        self._out: defaultdict[int, dict[int, None]] = defaultdict(dict)
        self._in: defaultdict[int, dict[int, None]] = defaultdict(dict)
        self._between: dict[tuple[int, int], int] = {}
        self._vertex_count = vertex_count
        self.set_aside: list[Part] = []
        """Parts merged in parallel with an unbounded join: no core edge holds them."""

    def new_vertex(self) -> int:
        self._vertex_count += 1
        return self._vertex_count - 1

    def add(self, tail: int, head: int, part: Part | None) -> None:
        between = self._between
        existing = between.get((tail, head))
        if existing is not None:
            previous = self._parts[existing]
            merged = self._parts[existing] = _parallel(previous, part)
            if merged is None:
                self.set_aside.extend(p for p in (previous, part) if p is not None)
            return
        edge = between[tail, head] = len(self._parts)
        self._tails.append(tail)
        self._heads.append(head)
        self._parts.append(part)
        self._out[tail][edge] = None
        self._in[head][edge] = None

    def _remove(self, edge: int) -> Part | None:
        tail, head = self._tails[edge], self._heads[edge]
        del self._out[tail][edge], self._in[head][edge], self._between[tail, head]
        self._tails[edge] = _REMOVED
        return self._parts[edge]

    def reduce(self) -> None:
        """Apply the series rule until no vertex has exactly one edge in and one out.

        Parallel edges were merged as they were added; a series merge may create a new
        pair of parallel edges, which merges at once, and may leave its two end vertices
        with one edge in and one out, so they are looked at again.
        """
        pending = deque(sorted(self._out.keys() & self._in.keys() - {SOURCE, SINK}))
        while pending:
            vertex = pending.popleft()
            incoming, outgoing = self._in[vertex], self._out[vertex]
            if len(incoming) != 1 or len(outgoing) != 1:
                continue
            (first,), (second,) = incoming, outgoing
            tail, head = self._tails[first], self._heads[second]
            part = _series(self._remove(first), self._remove(second))
            self.add(tail, head, part)
            if tail > SINK:
                pending.append(tail)
            if head > SINK:
                pending.append(head)

    def core(self) -> Iterator[CoreEdge]:
        for tail, head, part in zip(self._tails, self._heads, self._parts, strict=True):
            if tail != _REMOVED:
                yield CoreEdge(tail, head, part)


#: The tail of an edge merged into another.
_REMOVED = -1
