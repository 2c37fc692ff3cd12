"""Find information bottlenecks in ONNX models with max-flow / min-cut over tensor widths."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onnx_flow.audit import audit
from onnx_flow.errors import AuditError
from onnx_flow.report import Report

if TYPE_CHECKING:
    import networkx

__all__ = ["AuditError", "Report", "__version__", "audit", "audit_module", "graph"]


def graph(*args: Any, **kwargs: Any) -> networkx.MultiDiGraph:
    """The model as a networkx graph; see :func:`onnx_flow.nxgraph.graph`."""
    from onnx_flow.nxgraph import graph as build  # networkx is imported only when asked for

    return build(*args, **kwargs)


def audit_module(*args: Any, **kwargs: Any) -> Report:
    """Export a torch module and audit it; see :func:`onnx_flow.module.audit_module`."""
    from onnx_flow.module import audit_module as run_module  # torch only when asked for

    return run_module(*args, **kwargs)


__version__ = "0.1.0"
