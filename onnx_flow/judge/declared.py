"""Declared bottlenecks: the layers a user says are narrow on purpose (``--allow``).

An autoencoder is two models, an encoder and a decoder, and its latent is narrow by
design. Declaring a layer splits the model at the tensors it hands on: each becomes an
extra output of the part before it and an extra input of the part after it (see
:func:`onnx_flow.flow.network.connect`). The declared squeeze then passes; a second squeeze,
or a path that goes around the declared layer, is still reported.
"""

from __future__ import annotations

from collections.abc import Sequence

from onnx_flow.errors import AuditError
from onnx_flow.measure.widths import Widths
from onnx_flow.records import ShapedGraph

__all__ = ["split_tensors"]


def split_tensors(graph: ShapedGraph, widths: Widths, allow: Sequence[str]) -> tuple[str, ...]:
    """The tensors at which the declared layers split the model, in graph order.

    Each entry of ``allow`` names a tensor, a node, or a module path (``enc.2``: every
    node in that module or below it). A node or a module hands on the sample-carrying
    tensors it writes that something outside it reads, or that the graph outputs.

    Raises:
        AuditError: an entry matches nothing, or a tensor it names has no known width.
    """
    chosen: set[str] = set()
    for spec in allow:
        found = _match(graph, widths, spec)
        if not found:
            raise AuditError(
                f"--allow {spec}: no tensor, node or module of the model that carries"
                " sample information has that name"
            )
        for tensor in sorted(found):
            if tensor not in widths.known:
                raise AuditError(f"--allow {spec}: the width of {tensor!r} is unknown")
        chosen |= found
    return tuple(name for name in graph.carrying if name in chosen)


def _match(graph: ShapedGraph, widths: Widths, spec: str) -> set[str]:
    if widths.carries(spec) and spec not in graph.inputs:
        return {spec}
    members = [node for node in graph.nodes if node.name == spec]
    if not members:
        prefix = spec + "."
        members = [
            node
            for node in graph.nodes
            if (module := node.module) is not None and (module == spec or module.startswith(prefix))
        ]
    inside = {id(node) for node in members}
    written = {out for node in members for out in node.outputs if widths.carries(out)}
    read_outside = {name for node in graph.nodes if id(node) not in inside for name in node.inputs}
    return {t for t in written if t in read_outside or t in graph.outputs}
