"""Max-flow and minimum cuts from the inputs to the outputs.

The flow is solved on the reduced network (:mod:`onnx_flow.flow.reduce`); when reduction
leaves more than a single edge, networkx's Boykov-Kolmogorov algorithm solves the
core. Both minimum cuts are read from one residual graph: a search forward from the
source gives the cut nearest the inputs, a search backward from the sink the cut
nearest the outputs (the one ``networkx.minimum_cut`` returns).
"""

from __future__ import annotations

from collections.abc import Iterable

from onnx_flow.flow.network import SINK, SOURCE
from onnx_flow.flow.reduce import UNBOUNDED, Capacity, CoreEdge, Part, Prepared, Reduced

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
        "value",
    )

    def __init__(
        self,
        value: int,
        inputs: tuple[str, ...],
        near_inputs: tuple[str, ...],
        near_outputs: tuple[str, ...],
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
        if parent is not None and parent.kind == "series":
            part = parent  # any child at 0 puts a series part at 0: one answer for all
        answer = self._answers.get(id(part))
        if answer is None:
            answer = self._answers[id(part)] = self._without_part(part)
        return answer

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
    return Flow(
        value=int(value),
        inputs=reduced.inputs,
        near_inputs=tuple(sorted(set(near_inputs), key=order.__getitem__)),
        near_outputs=tuple(sorted(set(near_outputs), key=order.__getitem__)),
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


def _cut(edges: tuple[CoreEdge, ...], flow: dict[int, Capacity], *, from_source: bool) -> list[str]:
    """Tensors of the minimum cut found by a residual search from one terminal."""
    spare: dict[int, list[int]] = {}
    for index, edge in enumerate(edges):
        forward, backward = (edge.tail, edge.head) if from_source else (edge.head, edge.tail)
        if flow[index] < _capacity(edge):
            spare.setdefault(forward, []).append(backward)
        if flow[index] > 0:
            spare.setdefault(backward, []).append(forward)
    start = SOURCE if from_source else SINK
    seen = {start}
    stack = [start]
    while stack:
        for neighbour in spare.get(stack.pop(), ()):
            if neighbour not in seen:
                seen.add(neighbour)
                stack.append(neighbour)
    tensors: list[str] = []
    for edge in edges:
        near, far = (edge.tail, edge.head) if from_source else (edge.head, edge.tail)
        if near in seen and far not in seen and edge.part is not None:
            tensors.extend(edge.part.cut(nearest_outputs=not from_source))
    return tensors


def _capacity(edge: CoreEdge) -> Capacity:
    return UNBOUNDED if edge.part is None else edge.part.capacity
