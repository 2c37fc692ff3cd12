"""Find information bottlenecks in ONNX models with max-flow / min-cut over tensor widths.

The functions are imported when first used: ``import onnx_flow`` (and the report and
its renderers) loads neither onnx, onnxruntime, networkx nor torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from onnx_flow.errors import AuditError
from onnx_flow.report import Report
from onnx_flow.version import __version__

if TYPE_CHECKING:
    from onnx_flow.dataflow import graph
    from onnx_flow.pipeline import audit
    from onnx_flow.pytorch import audit_module

__all__ = ["AuditError", "Report", "__version__", "audit", "audit_module", "graph"]

#: Public function -> the module that defines it.
_LAZY = {
    "audit": "onnx_flow.pipeline",
    "audit_module": "onnx_flow.pytorch",  # torch only when asked for
    "graph": "onnx_flow.dataflow",  # networkx only when asked for
}


def __getattr__(name: str) -> Any:
    """Import a public function on first use (PEP 562), and keep it."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    function = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = function
    return function
