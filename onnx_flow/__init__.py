"""Find information bottlenecks in ONNX models with max-flow / min-cut over tensor widths."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onnx_flow.audit import audit
from onnx_flow.errors import AuditError
from onnx_flow.report import Report

if TYPE_CHECKING:
    import networkx

__all__ = ["AuditError", "Report", "__version__", "audit", "graph"]


def graph(*args: Any, **kwargs: Any) -> networkx.MultiDiGraph:
    """The model as a networkx graph; see :func:`onnx_flow.nxgraph.graph`."""
    from onnx_flow.nxgraph import graph as build  # networkx is imported only when asked for

    return build(*args, **kwargs)


__version__ = "0.1.0"
