"""``python -m onnx_flow``: the command line."""

from onnx_flow.cli import main

raise SystemExit(main())
