"""The model as networkx graphs: the user's view, and the flow network for checking.

This module is not on the audit's path (importing networkx costs time an audit does
not need); it serves the Python API and the tests that cross-check the solver.
"""

from __future__ import annotations

import os

import networkx as nx
import onnx

from onnx_flow import network
from onnx_flow.audit import resolve
from onnx_flow.options import Options
from onnx_flow.profile import data_flow

__all__ = ["flow_digraph", "graph"]


def graph(
    source: str | os.PathLike[str] | onnx.ModelProto,
    *,
    dims: dict[str, int] | None = None,
    batch_dim: str | None = None,
    measure: str = "elements",
) -> nx.MultiDiGraph:
    """Return the model's data flow: op nodes joined by the tensors that carry samples.

    Nodes are the operators (by node name, attributes ``op_type``, ``module``) plus one
    node per data input and per graph output (``input:NAME``, ``output:NAME``). Each edge
    is one tensor from its producer to one reader, keyed by the tensor's name, with
    attributes ``width`` (``None`` when unknown), ``shape`` and ``dtype``. Tensors that
    carry no sample information (shape arithmetic, weights) are not drawn.

    Raises:
        AuditError: as :func:`onnx_flow.audit`.
    """
    options = Options.checked(dims=dims, batch_dim=batch_dim, measure=measure)
    shaped, resolved = resolve(source, options)
    operators, edges = data_flow(shaped, resolved)
    result = nx.MultiDiGraph()
    for name, op_type, module in operators:
        result.add_node(name, op_type=op_type, module=module)
    for tail, head, tensor in edges:
        tensor_type = shaped.types.get(tensor)
        result.add_edge(
            tail,
            head,
            key=tensor,
            width=resolved.known.get(tensor),
            shape=tensor_type.shape if tensor_type else None,
            dtype=tensor_type.dtype if tensor_type else "",
        )
    return result


def flow_digraph(flow_network: network.FlowNetwork, *, outputs: list[str]) -> nx.DiGraph:
    """The unreduced split-vertex network with only ``outputs`` joined to the sink.

    Each tensor is an edge ``("in", name) -> ("out", name)`` of capacity = width; its
    producer (an operator vertex, an int, or ``network.SOURCE``) feeds its ``in`` half and
    its ``out`` half feeds each reader (and ``network.SINK`` for a kept output). An edge
    without a ``capacity`` attribute is unbounded, as networkx's flow functions read it.
    """
    result = nx.DiGraph()
    result.add_nodes_from((network.SOURCE, network.SINK))
    for tensor, name in enumerate(flow_network.tensors):
        capacity = flow_network.capacity[tensor]
        attributes = {} if capacity is None else {"capacity": capacity}
        result.add_edge(("in", name), ("out", name), **attributes)
        result.add_edge(flow_network.producer[tensor], ("in", name))
        for reader in flow_network.readers[tensor]:
            result.add_edge(("out", name), reader)
    for name in outputs:
        if name in flow_network.outputs:
            result.add_edge(("out", name), network.SINK)
    return result
