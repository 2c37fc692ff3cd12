"""The head judged apart: a model that ends in a fixed linear map to logits is a trunk
and a head, as an autoencoder is an encoder and a decoder.

A V-way class score is delivered through d + 1 directions by design: a verdict whose
reference is the logits fails every language model and ImageNet classifier and says
nothing of their trunks. So where an output ends in a map that the
``softmax_bottleneck`` finding names (evidence of logits, d + 1 < V), the trunk is
judged up to the map's input, and the map's d -> V squeeze is that finding. A plain wide
output (an autoencoder's decoder, ``Linear(4, 64)``) gives no evidence of logits and is
judged as it stands.
"""

from __future__ import annotations

from collections.abc import Sequence

from onnx_flow.judge.findings import head_map
from onnx_flow.measure.widths import Widths
from onnx_flow.records import ShapedGraph
from onnx_flow.report import Finding, FindingKind, Head

__all__ = ["heads"]


def heads(graph: ShapedGraph, widths: Widths, found: Sequence[Finding]) -> dict[str, Head]:
    """Graph output -> the head that ends the model there, for each output whose last
    linear map is a ``softmax_bottleneck`` of ``found`` and whose input has a known
    width."""
    squeezes = {
        f.node: f
        for f in found
        if f.kind is FindingKind.SOFTMAX_BOTTLENECK and f.figures.get("d") is not None
    }
    chosen: dict[str, Head] = {}
    for output in graph.outputs:
        linear = head_map(graph, output)
        finding = squeezes.get(linear.name) if linear is not None else None
        if linear is None or finding is None:
            continue
        end = next((i for i in linear.inputs[:2] if i in graph.carrying), None)
        if end is None or end not in widths.known:
            continue
        figures = finding.figures
        chosen[output] = Head(
            tensor=end,
            width=widths.known[end],
            node=linear.name,
            module=linear.module,
            d=figures["d"],
            vocabulary=figures["vocabulary"],
        )
    return chosen
