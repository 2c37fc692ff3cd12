"""The flow network: each tensor is a vertex whose capacity is its width.

A tensor is split into an edge ``in -> out`` carrying its width, so a tensor read by
three layers is counted once, not three times. Operators are vertices of unbounded
capacity joined to the tensors they read and write. A super-source feeds every data
input and every output feeds a super-sink. Only tensors that carry sample information
take part. The network is plain Python (integer vertices, an edge list) so that an
audit does not pay for building a networkx graph; :mod:`onnx_flow.graph` gives the
same network as networkx graphs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from onnx_flow.shapes import ShapedGraph
from onnx_flow.widths import Widths

__all__ = ["SINK", "SOURCE", "Edge", "FlowNetwork", "build"]

SOURCE = 0
SINK = 1


@dataclass(frozen=True, slots=True)
class Edge:
    """A directed edge of the flow network."""

    tail: int
    head: int
    capacity: int | None
    """Width of the tensor this edge stands for; ``None`` is unbounded: joins between
    operators and tensors, and tensors whose width is unknown."""
    tensor: str | None
    """The tensor this edge splits, ``None`` for joins."""


@dataclass(frozen=True, slots=True)
class FlowNetwork:
    """Vertices ``0 .. vertex_count - 1``: SOURCE, SINK, then tensor halves and operators."""

    vertex_count: int
    edges: tuple[Edge, ...]
    tensor_edges: Mapping[str, int]
    """Tensor name -> index of its split edge, in graph order."""
    sink_edges: Mapping[str, int]
    """Output name -> index of the edge that joins it to the sink."""
    source_edges: Mapping[str, int]
    """Data input name -> index of the edge that feeds it from the source."""


def build(graph: ShapedGraph, widths: Widths) -> FlowNetwork:
    """Return the split-vertex flow network of the tensors that carry sample information."""
    capacity: dict[str, int | None] = {**dict.fromkeys(widths.unknown), **widths.known}
    names = dict.fromkeys(
        name
        for name in (*graph.inputs, *(out for node in graph.nodes for out in node.outputs))
        if name in capacity
    )
    # Tensor halves take vertices 2, 3, 4, ...; operators are numbered after them.
    ends = {name: (2 + 2 * i, 3 + 2 * i) for i, name in enumerate(names)}
    next_vertex = 2 + 2 * len(ends)
    edges: list[Edge] = []
    tensor_edges: dict[str, int] = {}
    for name, (inner, outer) in ends.items():
        tensor_edges[name] = len(edges)
        edges.append(Edge(inner, outer, capacity[name], name))
    for node in graph.nodes:
        written = [out for out in node.outputs if out in capacity]
        read = [name for name in dict.fromkeys(node.inputs) if name in capacity]
        if not written or not read:
            continue
        vertex = next_vertex
        next_vertex += 1
        edges.extend(Edge(ends[name][1], vertex, None, None) for name in read)
        edges.extend(Edge(vertex, ends[name][0], None, None) for name in written)
    source_edges = {}
    for name in graph.inputs:
        source_edges[name] = len(edges)
        edges.append(Edge(SOURCE, ends[name][0], None, None))
    sink_edges = {}
    for name in dict.fromkeys(graph.outputs):
        if name in ends:
            sink_edges[name] = len(edges)
            edges.append(Edge(ends[name][1], SINK, None, None))
    return FlowNetwork(
        vertex_count=next_vertex,
        edges=tuple(edges),
        tensor_edges=tensor_edges,
        sink_edges=sink_edges,
        source_edges=source_edges,
    )

