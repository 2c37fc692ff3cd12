"""Oracles written independently of the solver: the unreduced split-vertex network."""

from __future__ import annotations

import networkx as nx

from onnx_flow.flow import network


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
