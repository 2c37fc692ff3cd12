"""The ``rank`` measure: a linear map passes no more directions than its weight's rank.

A 64 -> 64 layer whose weight has rank 3 passes 3 directions per position. Each MatMul,
Gemm or Conv whose weight is an initializer or a ``Constant`` (also through a Transpose,
a Cast or a DequantizeLinear of one: the dequantized weight counts) caps its output at
the weight's numerical rank times the positions it is applied at: rank x (elements /
output features). A Conv is an out_channels x (in_channels / groups x kh x kw) matrix per
position (per group, the ranks adding up). The rank is numpy's ``matrix_rank``, or with
an energy fraction the energy rank (:mod:`onnx_flow.measure.spectrum`); each map's
spectrum is reported beside.

Weights are read one initializer at a time and dropped after their rank is known, so
memory stays near the largest single weight.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from onnx_flow.frontend.stored import Stored
from onnx_flow.measure import progress
from onnx_flow.measure.spectrum import Spectrum, joined, spectrum
from onnx_flow.records import Node, ShapedGraph
from onnx_flow.report import LayerSpectrum

__all__ = ["caps"]

#: Ops that pass a weight on unchanged but for its layout or encoding.
_WEIGHT_PASSING = frozenset({"Transpose", "Cast", "Identity"})

#: The linear maps whose weight has a rank.
_LINEAR = frozenset({"MatMul", "Gemm", "Conv"})

_DEQUANTIZE = frozenset({"DequantizeLinear"})

_CONSTANT = frozenset({"Constant"})


def caps(
    graph: ShapedGraph, stored: Stored, energy: float | None = None
) -> tuple[dict[str, int], list[LayerSpectrum]]:
    """Tensor -> the most directions its producing linear map can pass, and each
    measured map's spectrum, in graph order.

    Args:
        graph: the shaped graph.
        stored: the model's weights.
        energy: cap at the energy rank holding this fraction; ``None``: the numerical rank.
    """
    maps = list(_linear_maps(graph))
    found: dict[str, int] = {}
    spectra: list[LayerSpectrum] = []
    for count, (node, weight, dequantize) in enumerate(maps, start=1):
        out = node.outputs[0]
        shape = graph.static(out)
        values = stored.weight(weight, dequantized_by=dequantize)
        if shape and values is not None:
            groups = _groups(graph, node, weight) if node.op_type == "Conv" else 1
            measured = _spectrum(values, node.op_type, groups)
            features = shape[1] if node.op_type == "Conv" else shape[-1]
            elements = graph.types[out].elements
            if measured is not None and features and elements is not None:
                found[out] = measured.cap(energy) * (elements // features)
                spectra.append(measured.record(out, node, len(measured.values), energy))
        progress.step("weight ranks", count, len(maps))
    return found, spectra


def _groups(graph: ShapedGraph, node: Node, weight: str) -> int:
    """A Conv's groups: input channels over the weight's input channels per group."""
    shape, dims = graph.static(node.inputs[0]), graph.static(weight) or ()
    per_group = dims[1] if len(dims) > 1 else 0
    if shape is None or len(shape) < 2 or not per_group or shape[1] % per_group:
        return 1
    return shape[1] // per_group


def _linear_maps(graph: ShapedGraph) -> Iterator[tuple[Node, str, str | None]]:
    """(MatMul, Gemm or Conv node, the initializer its weight comes from, the output of
    the DequantizeLinear on the way, if any)."""
    for node in graph.nodes:
        if node.is_standard(_LINEAR) and len(node.inputs) >= 2:
            found = _initializer(graph, node.inputs[1])
            if found is not None:
                yield node, *found


def _initializer(graph: ShapedGraph, name: str) -> tuple[str, str | None] | None:
    """The initializer (or ``Constant``) a weight comes from, through transposes and
    casts (which keep its rank) and at most one DequantizeLinear; ``None`` when it is
    computed from data."""
    name = graph.walk_back(name, _WEIGHT_PASSING)
    dequantize = None
    producer = graph.producers.get(name)
    if producer is not None and producer.is_standard(_DEQUANTIZE) and producer.inputs:
        dequantize = name
        name = graph.walk_back(producer.inputs[0], _WEIGHT_PASSING)
        producer = graph.producers.get(name)
    held = producer is not None and producer.is_standard(_CONSTANT)
    return (name, dequantize) if name in graph.constants or held else None


def _spectrum(weight: np.ndarray, op_type: str, groups: int) -> Spectrum | None:
    """The spectrum of the linear map a weight defines; ``None`` for a shape that is
    not a matrix (or, for a Conv, out_channels x in_channels/groups x kernel)."""
    if op_type == "Conv":
        if weight.ndim < 2 or weight.shape[0] % groups:
            return None
        # Each group maps its own channels: the map is block-diagonal.
        blocks = weight.reshape(groups, weight.shape[0] // groups, -1)
        return joined(map(spectrum, blocks))
    if weight.ndim != 2:
        return None
    return spectrum(weight)
