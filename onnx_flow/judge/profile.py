"""The picture of a model's flow: its cross-section along depth, and its data flow.

Depth is a tensor's position in topological order. At each depth the *cross-section*
is the total width of the tensors alive there: made at or before it (the data inputs
from the start) and read by a layer that writes after it (the outputs to the end).
Every path from the inputs to the outputs passes through one of them, so the
cross-section is a cut and never falls below the max-flow: a skip is counted where it
carries information, and a U-Net's profile stays at its input width where its inner
layer dips. A skip is a tensor read more than one step after it was made: an arc from
its depth to the depth of what the reader writes. The HTML report and the plot draw the
profile, DOT draws the data flow (operators joined by the tensors that carry samples);
all mark the cut's tensors. The audit builds it from its own graph and widths when a
picture is asked for, so nothing is loaded or measured twice.
"""

from __future__ import annotations

from onnx_flow.measure.widths import Widths
from onnx_flow.records import ShapedGraph, file_name
from onnx_flow.report import Point, Profile

__all__ = ["data_flow", "profile"]


def profile(graph: ShapedGraph, widths: Widths) -> Profile:
    """The profile and data flow of a model the audit has shaped and measured."""
    depth = {name: index for index, name in enumerate(graph.carrying)}
    last = len(depth)
    # A tensor is alive from its depth (0 for the data inputs) up to the last tensor its
    # readers write (the end for an output): change[d] is what the cross-section gains at d.
    end = dict.fromkeys(graph.outputs, last)
    skips: dict[tuple[int, int], None] = {}
    for node in graph.nodes:
        written = [depth[o] for o in node.outputs if o in depth]
        if not written:
            continue
        first, final = min(written), max(written)
        for name in node.inputs:
            if name in depth:
                end[name] = max(end.get(name, 0), final)
                if first - depth[name] > 1:
                    skips[depth[name], first] = None
    change = [0] * (last + 1)
    for name, index in depth.items():
        width = widths.known.get(name)
        start = 0 if name in graph.inputs else index
        if width and end.get(name, 0) > start:
            change[start] += width
            change[end[name]] -= width
    points = []
    alive = 0
    for name, index in depth.items():
        alive += change[index]
        producer = graph.producers.get(name)
        width = widths.known.get(name)
        points.append(
            Point(
                tensor=name,
                depth=index,
                width=width,
                elements=widths.uncapped.get(name, width),
                layer=(producer.module or producer.name) if producer else name,
                alive=alive,
            )
        )
    operators, edges = data_flow(graph, widths)
    nodes = tuple((file_name(node.name), node.outputs) for node in graph.nodes)
    return Profile(tuple(points), tuple(sorted(skips)), operators, edges, nodes)


def data_flow(
    graph: ShapedGraph, widths: Widths
) -> tuple[tuple[tuple[str, str, str | None], ...], tuple[tuple[str, str, str], ...]]:
    """Operators and the carrying tensors between them, each tensor once per reader."""
    operators: list[tuple[str, str, str | None]] = []
    producer: dict[str, str] = {}
    readers: list[tuple[str, tuple[str, ...]]] = []
    for name in graph.inputs:
        operators.append((f"input:{name}", "Input", None))
        producer[name] = f"input:{name}"
    for node in graph.nodes:
        if any(widths.carries(out) for out in node.outputs):
            operators.append((node.name, node.op_type, node.module))
            producer.update(dict.fromkeys(node.outputs, node.name))
            readers.append((node.name, node.inputs))
    for name in graph.outputs:
        if widths.carries(name):
            operators.append((f"output:{name}", "Output", None))
            readers.append((f"output:{name}", (name,)))
    edges = tuple(
        (producer[name], reader, name)
        for reader, inputs in readers
        for name in dict.fromkeys(inputs)
        if widths.carries(name)
    )
    return tuple(operators), edges
