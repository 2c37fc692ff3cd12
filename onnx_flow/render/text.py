"""Text for a person at a terminal: the verdict first, then the layers that form the cut."""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from onnx_flow.report import Bypassed, CutTensor, OutputResult, Report

__all__ = ["render"]

_WIDTH = 110
_MAX_BYPASSED_ROWS = 12


def render(reports: Sequence[Report], *, color: bool = False) -> str:
    """Render each report as a headline and tables of cut, bypassed and unknown tensors."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=_WIDTH,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
    )
    for index, report in enumerate(reports):
        if index:
            console.print()
        _report(console, report)
    return buffer.getvalue()


def _report(console: Console, report: Report) -> None:
    dims = ", ".join(f"{name}={size}" for name, size in report.dims)
    console.print(
        Text(report.model, style="bold"),
        Text(f"({report.measure}; {dims or 'no symbolic dims'})", style="dim"),
    )
    console.print(_headline(report.total, "all outputs" if len(report.outputs) > 1 else None))
    if len(report.outputs) > 1:
        table = Table(
            "output", "max-flow", "reference", "ratio", "verdict", box=None, padding=(0, 2)
        )
        for output in report.outputs:
            table.add_row(
                output.name,
                str(output.max_flow),
                str(output.reference),
                f"{output.ratio:.4g}",
                _verdict(output),
            )
        console.print(table)
    total = report.total
    if total.cut_near_inputs == total.cut_near_outputs:
        _cut(console, "minimum cut", total.cut_near_inputs)
    else:
        _cut(console, "minimum cut nearest the inputs", total.cut_near_inputs)
        _cut(console, "minimum cut nearest the outputs", total.cut_near_outputs)
    if report.bypassed:
        _bypassed(console, report.bypassed)
    if report.unknown:
        console.print(
            Text(
                f"{len(report.unknown)} tensor(s) of unknown width, not limiting the flow:",
                style="yellow",
            )
        )
        for unknown in report.unknown:
            console.print(f"  {unknown.tensor}: {unknown.reason}")


def _headline(result: OutputResult, label: str | None) -> Text:
    prefix = f"{label}: " if label else ""
    figures = f"max-flow {result.max_flow} of {result.reference} (ratio {result.ratio:.4g})"
    if result.bottleneck:
        return Text.assemble(prefix, ("BOTTLENECK", "bold red"), f"  {figures}")
    return Text.assemble(prefix, ("no bottleneck", "bold green"), f"  {figures}")


def _verdict(result: OutputResult) -> Text:
    return Text("BOTTLENECK", "red") if result.bottleneck else Text("ok", "green")


def _cut(console: Console, title: str, tensors: Sequence[CutTensor]) -> None:
    if not tensors:
        return
    table = Table(title=title, title_justify="left", box=None, padding=(0, 2))
    for column in ("layer", "op", "tensor", "shape", "width"):
        table.add_column(column, justify="right" if column == "width" else "left")
    for t in tensors:
        shape = "x".join(str(d) for d in t.shape) if t.shape is not None else "?"
        table.add_row(
            t.module or t.node or "(input)", t.op or "input", t.tensor, shape, str(t.width)
        )
    console.print(table)


def _bypassed(console: Console, tensors: Sequence[Bypassed]) -> None:
    table = Table(
        title="narrow layers bypassed by skips", title_justify="left", box=None, padding=(0, 2)
    )
    for column in ("layer", "op", "tensor", "width", "flow around"):
        table.add_column(column, justify="right" if column in ("width", "flow around") else "left")
    for t in tensors[:_MAX_BYPASSED_ROWS]:
        table.add_row(
            t.module or t.node or "(input)", t.op or "input", t.tensor, str(t.width), str(t.bypass)
        )
    console.print(table)
    if len(tensors) > _MAX_BYPASSED_ROWS:
        hidden = len(tensors) - _MAX_BYPASSED_ROWS
        console.print(Text(f"  ... and {hidden} more (all of them in --format json)", style="dim"))
