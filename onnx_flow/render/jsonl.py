"""JSON Lines: one report object per line, for a corpus audited model by model.

The command line writes each line as its model finishes (and appends to ``--output``),
so that a stop leaves every finished line whole; this renders the same lines at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from onnx_flow.report import Result

__all__ = ["line", "render"]


def render(reports: Sequence[Result], *, color: bool = False) -> str:
    """One line per report, in the order given.

    ``color`` is unused: the format has no colours.
    """
    return "".join(map(line, reports))


def line(report: Result, *, fingerprint: str | None = None) -> str:
    """The report contract as one line of JSON, ended by a newline, with the model's
    ``fingerprint`` if given (:mod:`onnx_flow.cli.resume`)."""
    entry = report.to_dict()
    if fingerprint is not None:
        entry["fingerprint"] = fingerprint
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
