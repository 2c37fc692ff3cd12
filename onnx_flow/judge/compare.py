"""Compare two audits of a model: what changed between an old and a new version."""

from __future__ import annotations

from onnx_flow.report import Change, Comparison, Report

__all__ = ["compare"]


def compare(old: Report, new: Report) -> Comparison:
    """Match the two reports' outputs by name (declared outputs included)."""
    before = {o.name: o for o in old.outputs}
    after = {o.name: o for o in new.outputs}
    changes = [Change(name, before.get(name), output) for name, output in after.items()]
    changes += [Change(name, output, None) for name, output in before.items() if name not in after]
    return Comparison(old, new, tuple(changes))
