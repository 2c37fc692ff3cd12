"""A comparison of two versions of a model, as text, JSON or Markdown.

Every format says why a version regressed in one line (:func:`reasons`) and lists what
else changed: findings added and removed, layers newly on the cut or no longer
bypassed, spectra that fell.
"""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from onnx_flow.render.markdown import cell, table_row
from onnx_flow.render.text import safe
from onnx_flow.render.wording import cut_layers
from onnx_flow.report import Change, Comparison, Finding, FindingKind, OutputResult, SpectrumFall

__all__ = ["reasons", "render"]


_COLUMNS = ("output", "old", "new", "change", "new narrowest layers")


def render(comparison: Comparison, output_format: str = "text", *, color: bool = False) -> str:
    """The comparison as JSON, as Markdown (a pull-request comment), or as a headline
    and a table of the outputs."""
    if output_format == "json":
        return json.dumps(_to_dict(comparison), indent=2, ensure_ascii=False) + "\n"
    if output_format == "markdown":
        return _markdown(comparison)
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=110, force_terminal=color, no_color=not color, highlight=False
    )
    # Lines of their own are never wrapped: the headline is one line however many layers.
    console.print(safe(f"{comparison.old.model} -> {comparison.new.model}", "bold"), soft_wrap=True)
    console.print(_headline(comparison), soft_wrap=True)
    table = Table(*_COLUMNS, box=None, padding=(0, 2))
    for change in comparison.changes:
        styles = ("", "", "", _verdict(change)[1], "")
        table.add_row(*map(safe, _cells(change), styles))
    console.print(table)
    for other in _other_changes(comparison):
        console.print(safe(other), soft_wrap=True)
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def _headline(comparison: Comparison) -> Text:
    """``REGRESSED: `` and the reasons, or ``no regression``."""
    if comparison.regressed:
        return safe(f"REGRESSED: {'; '.join(reasons(comparison))}", "bold red")
    return Text("no regression", style="bold green")


def _markdown(comparison: Comparison) -> str:
    verdict = (
        f"**regressed**: {cell('; '.join(reasons(comparison)))}"
        if comparison.regressed
        else "no regression"
    )
    header = table_row(*_COLUMNS) + "| --- | ---: | ---: | --- | --- |\n"
    rows = "".join(table_row(*_cells(c)) for c in comparison.changes)
    models = f"{cell(comparison.old.model)} -> {cell(comparison.new.model)}"
    others = "".join(f"- {cell(line)}\n" for line in _other_changes(comparison))
    return f"## onnx-flow diff\n\n{models}: {verdict}.\n\n{header}{rows}" + (
        f"\n{others}" if others else ""
    )


#: How a reason names a finding of each kind.
_FINDING_PHRASES = {
    FindingKind.SOFTMAX_BOTTLENECK: "softmax bottleneck",
    FindingKind.ATTENTION_HEAD_RANK: "attention head rank below the sequence",
    FindingKind.ATTENTION_WITHOUT_SKIP: "attention without a skip",
}


def reasons(comparison: Comparison) -> list[str]:
    """Why the new version regressed, a phrase per cause naming its layers: the outputs
    that squeeze harder or newly, the failing findings it adds, the skips it loses
    around layers no such finding names. Empty when it did not regress."""
    outputs = [_output_reason(change) for change in comparison.regressed_outputs]
    by_kind = _by_kind(comparison.failing_findings)
    findings = [
        f"{_FINDING_PHRASES[kind]} at {_listed(layers)} (new)" for kind, layers in by_kind.items()
    ]
    named = {layer for layers in by_kind.values() for layer in layers}
    skips = [layer for layer in comparison.skips_lost if layer not in named]
    return outputs + findings + ([f"skip lost around {_listed(skips)}"] if skips else [])


def _output_reason(change: Change) -> str:
    """``y: 4 of 64 (0.0625), was 8 of 64 (0.125), at down (MatMul, 4)``."""
    assert change.new is not None  # a regressed output exists in the new version
    figures, layers = _figures(change.new), cut_layers(change.new)
    if change.old is not None and change.old.bottleneck:
        return f"{change.name}: {figures}, was {_figures(change.old)}, at {layers}"
    return f"{change.name}: new bottleneck {figures} at {layers}"


def _other_changes(comparison: Comparison) -> list[str]:
    """A line for each kind of change besides the outputs', when there is one."""
    lines = {
        "findings added": _findings(comparison.findings_added),
        "findings removed": _findings(comparison.findings_removed),
        "newly on the cut": _listed(comparison.newly_on_cut),
        "no longer bypassed": _listed(comparison.no_longer_bypassed),
        "spectra fell": ", ".join(_fall(fall) for fall in comparison.spectra_fell),
    }
    return [f"{title}: {text}" for title, text in lines.items() if text]


def _findings(findings: tuple[Finding, ...]) -> str:
    """``attention_without_skip at a, b; softmax_bottleneck at lm_head``."""
    return "; ".join(
        f"{kind.value} at {_listed(layers)}" for kind, layers in _by_kind(findings).items()
    )


def _by_kind(findings: tuple[Finding, ...]) -> dict[FindingKind, list[str]]:
    """The findings' layers (module, else node), each once, by kind in order of
    appearance."""
    layers: dict[FindingKind, dict[str, None]] = {}
    for finding in findings:
        layers.setdefault(finding.kind, {})[finding.module or finding.node] = None
    return {kind: list(names) for kind, names in layers.items()}


def _fall(fall: SpectrumFall) -> str:
    """``down (rank 64 -> 16, energy rank 60 -> 12)``."""
    old, new = fall.old, fall.new
    layer = new.module or new.node or new.tensor
    energy = f"energy rank {old.energy_rank} -> {new.energy_rank}"
    return f"{layer} (rank {old.rank} -> {new.rank}, {energy})"


#: The layers :func:`_listed` names before it counts the rest.
_NAMED = 8


def _listed(layers: tuple[str, ...] | list[str]) -> str:
    """``a, b, c``: the first ``_NAMED`` layers, then how many more."""
    hidden = len(layers) - _NAMED
    return ", ".join(layers[:_NAMED]) + (f" and {hidden} more" if hidden > 0 else "")


def _cells(change: Change) -> tuple[str, ...]:
    """A change's row: the output, both figures, the verdict, the new cut's layers."""
    layers = "" if change.new is None else _layers(change.new)
    return change.name, _figures(change.old), _figures(change.new), _verdict(change)[0], layers


def _figures(result: OutputResult | None) -> str:
    if result is None:
        return "-"
    return f"{result.max_flow} of {result.reference} ({result.ratio:.4g})"


def _verdict(change: Change) -> tuple[str, str]:
    """The change in a word, and its colour."""
    if change.regressed:
        return "worse", "red"
    if change.old is None or change.new is None:
        return ("added" if change.old is None else "removed"), ""
    if change.new.ratio > change.old.ratio:
        return "better", "green"
    return "same", ""


def _layers(result: OutputResult) -> str:
    return cut_layers(result) if result.bottleneck else ""


def _to_dict(comparison: Comparison) -> dict[str, Any]:
    """The JSON object of the comparison."""
    return {
        "old": comparison.old.model,
        "new": comparison.new.model,
        "regressed": comparison.regressed,
        "reasons": reasons(comparison),
        "outputs": [
            {
                "name": change.name,
                "old": _figures_dict(change.old),
                "new": _figures_dict(change.new),
                "regressed": change.regressed,
            }
            for change in comparison.changes
        ],
        "findings_added": [f.to_dict() for f in comparison.findings_added],
        "findings_removed": [f.to_dict() for f in comparison.findings_removed],
        "newly_on_cut": list(comparison.newly_on_cut),
        "no_longer_bypassed": list(comparison.no_longer_bypassed),
        "skips_lost": list(comparison.skips_lost),
        "spectra_fell": [_fall_dict(fall) for fall in comparison.spectra_fell],
    }


def _fall_dict(fall: SpectrumFall) -> dict[str, Any]:
    """Where the spectrum is, and its ranks before and after."""
    new = fall.new
    return {
        "tensor": new.tensor,
        "node": new.node,
        "module": new.module,
        "old": {"rank": fall.old.rank, "energy_rank": fall.old.energy_rank},
        "new": {"rank": new.rank, "energy_rank": new.energy_rank},
    }


def _figures_dict(result: OutputResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "max_flow": result.max_flow,
        "reference": result.reference,
        "ratio": result.ratio,
        "bottleneck": result.bottleneck,
        "cut": cut_layers(result),
    }
