"""The command line: the only code that prints, writes files or exits.

:mod:`.main` wires argparse to the audit and the renderers, :mod:`.config` reads the
project's defaults, :mod:`.batch` audits many models, in worker processes if asked.
"""

from onnx_flow.cli.main import entry, main

__all__ = ["entry", "main"]
