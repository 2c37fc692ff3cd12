"""The command line: the only code that prints, writes files or exits.

:mod:`.main` wires argparse to the audit and the renderers, :mod:`.config` reads the
project's defaults, :mod:`.batch` audits many models: each in a process of its own
(:mod:`.sandbox`), on a Dask cluster if asked (:mod:`.cluster`); :mod:`.resume` says
which a JSON Lines file already holds.
"""

from onnx_flow.cli.main import entry, main

__all__ = ["entry", "main"]
