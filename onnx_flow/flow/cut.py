"""Max-flow and minimum cuts from the inputs to the outputs.

The flow is solved on the reduced network (:mod:`onnx_flow.flow.reduce`); when reduction
leaves more than a single edge, networkx's Boykov-Kolmogorov algorithm solves the
core. Both minimum cuts are read from one residual graph: a search forward from the
source gives the cut nearest the inputs, a search backward from the sink the cut
nearest the outputs (the one ``networkx.minimum_cut`` returns). The same graph says
which tensors lie on any minimum cut at all: a saturated edge whose ends no residual
path joins (Picard and Queyranne, 1980).
"""

from __future__ import annotations

from collections.abc import Iterable

from onnx_flow.flow.network import SINK, SOURCE, FlowNetwork
from onnx_flow.flow.reduce import (
    UNBOUNDED,
    Capacity,
    CoreEdge,
    Part,
    PartKind,
    Prepared,
    Reduced,
)

__all__ = ["Flow", "solve"]


class Flow:
    """The maximum flow to a set of outputs and its two extreme minimum cuts.

    It answers "what if this tensor carried nothing" (:meth:`without`), and keeps the
    answers: tensors of one series part share one.
    """

    __slots__ = (
        "_answers",
        "_reduced",
        "_roots",
        "_solved",
        "inputs",
        "near_inputs",
        "near_outputs",
        "on_cut",
        "value",
    )

    def __init__(
        self,
        value: int,
        inputs: tuple[str, ...],
        near_inputs: tuple[str, ...],
        near_outputs: tuple[str, ...],
        on_cut: tuple[str, ...],
        reduced: Reduced,
    ) -> None:
        self.value = value
        """Max-flow F in width units (elements or bits per sample)."""
        self.inputs = inputs
        """Data inputs the outputs depend on."""
        self.near_inputs = near_inputs
        """Tensors of the minimum cut nearest the inputs, in graph order."""
        self.near_outputs = near_outputs
        """Tensors of the minimum cut nearest the outputs, in graph order."""
        self.on_cut = on_cut
        """Tensors on some minimum cut, in graph order: both extremes and all between."""
        self._reduced = reduced
        self._roots = {id(edge.part): i for i, edge in enumerate(reduced.edges) if edge.part}
        """``id`` of each core edge's part -> the edge's index."""
        self._solved: dict[tuple[int, Capacity], int] = {}
        """(core edge, its capacity) -> the max-flow with that capacity."""
        self._answers: dict[int, int] = {}
        """``id`` of a part -> the max-flow without it."""

    def tensors(self) -> list[str]:
        """Tensors on some path from the inputs to the outputs, in graph order."""
        return list(self._reduced.leaves)

    def without(self, tensor: str) -> int:
        """The max-flow if ``tensor`` carried nothing (what goes around it)."""
        part = self._reduced.leaves[tensor]
        parent = part.parent
        if parent is not None and parent.kind is PartKind.SERIES:
            part = parent  # any child at 0 puts a series part at 0: one answer for all
        answer = self._answers.get(id(part))
        if answer is None:
            answer = self._answers[id(part)] = self._without_part(part)
        return answer

    def widened(self, network: FlowNetwork) -> tuple[int, tuple[str, ...]] | None:
        """The max-flow if every tensor on a minimum cut, other than the network's inputs
        and outputs, were unbounded, and the cut nearest the inputs that then limits it;
        ``None`` when every such tensor is an input or an output.

        The reduction is weighed with the lifted capacities for the solve and weighed
        back after it.
        """
        ends = {*network.inputs, *network.outputs.values()}
        lifted = [network.index[tensor] for tensor in self.on_cut]
        lifted = [number for number in lifted if number not in ends]
        if not lifted:
            return None
        capacity = list(network.capacity)
        for number in lifted:
            capacity[number] = None
        edges = self._reduced.edges
        self._reduced.weigh(capacity)
        try:
            value, core_flow = _max_flow(edges)
            cut = _cut(edges, core_flow, from_source=True)
        finally:
            self._reduced.weigh(network.capacity)
        return int(value), tuple(sorted(set(cut), key=network.index.__getitem__))

    def _without_part(self, part: Part) -> int:
        """The max-flow if ``part`` carried nothing."""
        capacity: Capacity = 0
        while part.parent is not None:
            capacity = part.parent.capacity_with(part, capacity)
            part = part.parent
        root = self._roots.get(id(part))
        if root is None or capacity == part.capacity:
            return self.value  # beside an unbounded join, or the core edge keeps its capacity
        if (root, capacity) not in self._solved:
            value, _ = _max_flow(self._reduced.edges, override=(root, capacity))
            self._solved[root, capacity] = int(value)
        return self._solved[root, capacity]


def solve(prepared: Prepared, *, outputs: Iterable[str]) -> Flow:
    """Return the max-flow from the data inputs to ``outputs`` and its cuts, on a
    prepared network that has been weighed, from its reduction for those outputs.

    Cost: a max-flow on the reduced core (Boykov-Kolmogorov, O(V E^2 |C|) in the worst
    case, near linear in practice).
    """
    reduced = prepared.reductions[tuple(outputs)]
    value, core_flow = _max_flow(reduced.edges)
    order = prepared.network.index
    near_inputs = _cut(reduced.edges, core_flow, from_source=True)
    near_outputs = _cut(reduced.edges, core_flow, from_source=False)
    on_cut = _on_some_cut(reduced.edges, core_flow)
    return Flow(
        value=int(value),
        inputs=reduced.inputs,
        near_inputs=tuple(sorted(set(near_inputs), key=order.__getitem__)),
        near_outputs=tuple(sorted(set(near_outputs), key=order.__getitem__)),
        on_cut=tuple(sorted(set(on_cut), key=order.__getitem__)),
        reduced=reduced,
    )


def _max_flow(
    edges: tuple[CoreEdge, ...], *, override: tuple[int, Capacity] | None = None
) -> tuple[Capacity, dict[int, Capacity]]:
    """Solve the core: (flow value, flow on each core edge by index)."""
    capacities = [_capacity(edge) for edge in edges]
    if override is not None:
        capacities[override[0]] = override[1]
    if not edges:
        return 0, {}
    if len(edges) == 1:
        return capacities[0], {0: capacities[0]}
    import networkx as nx  # only a core that reduction could not collapse needs it
    from networkx.algorithms.flow import boykov_kolmogorov

    graph = nx.DiGraph()
    for index, edge in enumerate(edges):
        # No capacity attribute means unbounded to networkx: joins and unknown widths.
        attributes = {} if capacities[index] == UNBOUNDED else {"capacity": capacities[index]}
        graph.add_edge(edge.tail, edge.head, **attributes)
    value, flows = nx.maximum_flow(graph, SOURCE, SINK, flow_func=boykov_kolmogorov)
    return value, {i: flows[edge.tail][edge.head] for i, edge in enumerate(edges)}


def _residual(
    edges: tuple[CoreEdge, ...], flow: dict[int, Capacity], *, reverse: bool = False
) -> dict[int, list[int]]:
    """The residual graph of ``flow`` (its arcs turned round with ``reverse``)."""
    arcs: dict[int, list[int]] = {}
    for index, edge in enumerate(edges):
        forward, backward = (edge.head, edge.tail) if reverse else (edge.tail, edge.head)
        if flow[index] < _capacity(edge):
            arcs.setdefault(forward, []).append(backward)
        if flow[index] > 0:
            arcs.setdefault(backward, []).append(forward)
    return arcs


def _cut(edges: tuple[CoreEdge, ...], flow: dict[int, Capacity], *, from_source: bool) -> list[str]:
    """Tensors of the minimum cut found by a residual search from one terminal."""
    arcs = _residual(edges, flow, reverse=not from_source)
    start = SOURCE if from_source else SINK
    seen = {start}
    stack = [start]
    while stack:
        for neighbour in arcs.get(stack.pop(), ()):
            if neighbour not in seen:
                seen.add(neighbour)
                stack.append(neighbour)
    tensors: list[str] = []
    for edge in edges:
        near, far = (edge.tail, edge.head) if from_source else (edge.head, edge.tail)
        if near in seen and far not in seen and edge.part is not None:
            tensors.extend(edge.part.cut(nearest_outputs=not from_source))
    return tensors


def _on_some_cut(edges: tuple[CoreEdge, ...], flow: dict[int, Capacity]) -> list[str]:
    """Tensors on some minimum cut: of each saturated core edge whose tail and head lie
    in different strongly connected components of the residual graph, the tensors on
    some minimum cut of its part."""
    saturated = [
        edge
        for index, edge in enumerate(edges)
        if edge.part is not None and flow[index] == edge.part.capacity != UNBOUNDED
    ]
    if len(edges) > 1:
        import networkx as nx

        residual = nx.DiGraph(_residual(edges, flow))
        residual.add_nodes_from(v for edge in edges for v in (edge.tail, edge.head))
        component = {
            vertex: number
            for number, members in enumerate(nx.strongly_connected_components(residual))
            for vertex in members
        }
        saturated = [edge for edge in saturated if component[edge.tail] != component[edge.head]]
    return [tensor for edge in saturated if edge.part is not None for tensor in edge.part.cuts()]


def _capacity(edge: CoreEdge) -> Capacity:
    return UNBOUNDED if edge.part is None else edge.part.capacity
