"""A comparison of two versions of a model, as text, JSON or Markdown."""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from onnx_flow.render.markdown import cell, table_row
from onnx_flow.render.wording import cut_layers
from onnx_flow.report import Change, Comparison, OutputResult

__all__ = ["render"]


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
    console.print(Text(f"{comparison.old.model} -> {comparison.new.model}", style="bold"))
    if comparison.regressed:
        console.print(Text("REGRESSED", style="bold red"))
    else:
        console.print(Text("no regression", style="bold green"))
    table = Table(*_COLUMNS, box=None, padding=(0, 2))
    for change in comparison.changes:
        table.add_row(*_cells(change))
    console.print(table)
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def _markdown(comparison: Comparison) -> str:
    verdict = "**regressed**" if comparison.regressed else "no regression"
    header = table_row(*_COLUMNS) + "| --- | ---: | ---: | --- | --- |\n"
    rows = "".join(table_row(*(text.plain for text in _cells(c))) for c in comparison.changes)
    models = f"{cell(comparison.old.model)} -> {cell(comparison.new.model)}"
    return f"## onnx-flow diff\n\n{models}: {verdict}.\n\n{header}{rows}"


def _cells(change: Change) -> tuple[Text, ...]:
    """A change's row: the output, both figures, the verdict, the new cut's layers."""
    layers = "" if change.new is None else _layers(change.new)
    return (
        Text(change.name),
        Text(_figures(change.old)),
        Text(_figures(change.new)),
        _verdict(change),
        Text(layers),
    )


def _figures(result: OutputResult | None) -> str:
    if result is None:
        return "-"
    return f"{result.max_flow} of {result.reference} ({result.ratio:.4g})"


def _verdict(change: Change) -> Text:
    if change.regressed:
        return Text("worse", style="red")
    if change.old is None or change.new is None:
        return Text("added" if change.old is None else "removed")
    if change.new.ratio > change.old.ratio:
        return Text("better", style="green")
    return Text("same")


def _layers(result: OutputResult) -> str:
    return cut_layers(result) if result.bottleneck else ""


def _to_dict(comparison: Comparison) -> dict[str, Any]:
    """The JSON object of the comparison."""
    return {
        "old": comparison.old.model,
        "new": comparison.new.model,
        "regressed": comparison.regressed,
        "outputs": [
            {
                "name": change.name,
                "old": _figures_dict(change.old),
                "new": _figures_dict(change.new),
                "regressed": change.regressed,
            }
            for change in comparison.changes
        ],
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
