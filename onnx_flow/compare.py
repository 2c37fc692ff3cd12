"""Compare two audits of a model: what changed between an old and a new version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onnx_flow.render.layers import cut_layers
from onnx_flow.report import OutputResult, Report

__all__ = ["Change", "Comparison", "compare"]


@dataclass(frozen=True, slots=True)
class Change:
    """One output in the old and the new model (``None`` where it does not exist)."""

    name: str
    old: OutputResult | None
    new: OutputResult | None

    @property
    def regressed(self) -> bool:
        """A bottleneck the old version did not have, or a lower ratio than it had."""
        if self.new is None or not self.new.bottleneck:
            return False
        return self.old is None or not self.old.bottleneck or self.new.ratio < self.old.ratio

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the change."""
        return {
            "name": self.name,
            "old": _figures(self.old),
            "new": _figures(self.new),
            "regressed": self.regressed,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """The outputs of two versions of a model, matched by name."""

    old: Report
    new: Report
    changes: tuple[Change, ...]
    """Outputs of the new version in its order, then outputs only the old one had."""

    @property
    def regressed(self) -> bool:
        return any(change.regressed for change in self.changes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the comparison."""
        return {
            "old": self.old.model,
            "new": self.new.model,
            "regressed": self.regressed,
            "outputs": [change.to_dict() for change in self.changes],
        }


def compare(old: Report, new: Report) -> Comparison:
    """Match the two reports' outputs by name (declared outputs included)."""
    before = {o.name: o for o in old.outputs}
    after = {o.name: o for o in new.outputs}
    changes = [Change(name, before.get(name), output) for name, output in after.items()]
    changes += [Change(name, output, None) for name, output in before.items() if name not in after]
    return Comparison(old, new, tuple(changes))


def _figures(result: OutputResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "max_flow": result.max_flow,
        "reference": result.reference,
        "ratio": result.ratio,
        "bottleneck": result.bottleneck,
        "cut": cut_layers(result),
    }
