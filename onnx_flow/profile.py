"""The width profile: each sample-carrying tensor's width along the network's depth.

Depth is a tensor's position in topological order. A skip is a tensor read more than
one step after it was made: drawn as an arc from its depth to the depth of what the
reader writes. The HTML report and the plot draw this; they mark the cut's tensors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import onnx

from onnx_flow.audit import resolve
from onnx_flow.options import Options

__all__ = ["Point", "Profile", "profile"]


@dataclass(frozen=True, slots=True)
class Point:
    """One tensor on the profile."""

    tensor: str
    depth: int
    width: int | None
    """Capacity in the measure (``None`` when unknown)."""
    elements: int | None
    """The width before a rank or data cap, where one applies; else ``width``."""
    layer: str
    """The producing layer's module path, else its node name, else the tensor."""


@dataclass(frozen=True, slots=True)
class Profile:
    points: tuple[Point, ...]
    skips: tuple[tuple[int, int], ...]
    """(depth of the tensor, depth of what its late reader writes), each once."""


def profile(source: str | os.PathLike[str] | onnx.ModelProto, options: Options) -> Profile:
    """The profile of one model, with the options of its audit."""
    graph, widths = resolve(source, options)
    depth = {name: index for index, name in enumerate(graph.carrying)}
    points = []
    for name, index in depth.items():
        node = graph.producers.get(name)
        width = widths.known.get(name)
        points.append(
            Point(
                tensor=name,
                depth=index,
                width=width,
                elements=widths.uncapped.get(name, width),
                layer=(node.module or node.name) if node else name,
            )
        )
    skips: dict[tuple[int, int], None] = {}
    for node in graph.nodes:
        written = [depth[o] for o in node.outputs if o in depth]
        if not written:
            continue
        for name in node.inputs:
            if name in depth and min(written) - depth[name] > 1:
                skips[depth[name], min(written)] = None
    return Profile(points=tuple(points), skips=tuple(sorted(skips)))
