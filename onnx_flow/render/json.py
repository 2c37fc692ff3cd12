"""JSON: one object for one model, a list for several; keys in a fixed order."""

from __future__ import annotations

import json
from collections.abc import Sequence

from onnx_flow.report import Result

__all__ = ["render"]


def render(reports: Sequence[Result], *, color: bool = False) -> str:
    """The report contract as JSON text, byte-identical for the same audit.

    ``color`` is unused: the format has no colours.
    """
    data = reports[0].to_dict() if len(reports) == 1 else [r.to_dict() for r in reports]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
