"""The model as a networkx graph: the user's view of its data flow.

This module is not on the audit's path (importing networkx costs time an audit does
not need); it serves the Python API.
"""

from __future__ import annotations

import networkx as nx

from onnx_flow.frontend.load import Source
from onnx_flow.judge.profile import data_flow
from onnx_flow.options import Options
from onnx_flow.pipeline import resolve

__all__ = ["graph"]


def graph(
    source: Source,
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
