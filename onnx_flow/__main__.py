"""``python -m onnx_flow``: the command line."""

from onnx_flow.cli import entry

entry()
