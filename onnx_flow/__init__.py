"""Find information bottlenecks in ONNX models with max-flow / min-cut over tensor widths."""

from onnx_flow.audit import audit
from onnx_flow.errors import AuditError
from onnx_flow.report import Report

__all__ = ["AuditError", "Report", "__version__", "audit"]

__version__ = "0.1.0"
