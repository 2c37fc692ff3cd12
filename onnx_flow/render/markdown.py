"""Markdown: one table over every model and output, fit for a pull-request comment."""

from __future__ import annotations

import html
from collections.abc import Sequence

from onnx_flow.render.wording import (
    JOINT_NOTE,
    cut_layers,
    dropped_output_shape,
    head,
    output_label,
    output_rows,
    printable,
    totals,
)
from onnx_flow.report import Failure, OutputResult, Report, Result

__all__ = ["cell", "render", "table_row"]

_HEADER = (
    "| model | output | max-flow | reference | ratio | verdict | narrowest layers |\n"
    "| --- | --- | ---: | ---: | ---: | --- | --- |\n"
)


_FINDINGS = "| model | kind | layer | what it means |\n| --- | --- | --- | --- |\n"


def render(reports: Sequence[Result], *, color: bool = False) -> str:
    """A heading, the verdict in one line, then one row per output of every model, and
    one line per head judged apart and per output shape dropped.

    ``color`` is unused: the format has no colours.
    """
    summary = totals(reports)
    rows = "".join(_rows(r) for r in reports)
    notes = [
        (r, note)
        for r in reports
        if isinstance(r, Report)
        for note in (*map(head, r.heads), *map(dropped_output_shape, r.dropped_output_shapes))
    ]
    noted = "".join(f"- {cell(r.model)}: {cell(note)}\n" for r, note in notes)
    found = [(r, f) for r in reports if isinstance(r, Report) for f in r.findings]
    findings = "".join(
        table_row(r.model, f.kind.value, f.module or f.node, f.message) for r, f in found
    )
    if findings:
        findings = f"\n### Findings from theory\n\n{_FINDINGS}{findings}"
    joint = any(isinstance(r, Report) and r.total.joint for r in reports)
    note = f"\n{cell(JOINT_NOTE)}.\n" if joint else ""
    noted = f"\n{noted}" if noted else ""
    return f"## onnx-flow\n\n{summary}.\n\n{_HEADER}{rows}{note}{noted}{findings}"


def _rows(result: Result) -> str:
    if isinstance(result, Failure):
        return table_row(result.model, "", "", "", "", "**not audited**", result.error)
    return "".join(_output_row(result, output) for output in output_rows(result))


def _output_row(report: Report, output: OutputResult) -> str:
    """An output's row; the joint flow's has no verdict (the outputs' rows have it)."""
    verdict = "-" if output.joint else "**bottleneck**" if output.bottleneck else "ok"
    return table_row(
        report.model,
        output_label(output),
        str(output.max_flow),
        str(output.reference),
        f"{output.ratio:.4g}",
        verdict,
        cut_layers(output),
    )


def table_row(*cells: str) -> str:
    """One row of a Markdown table, each cell made table-safe."""
    return "| " + " | ".join(cell(c) for c in cells) + " |\n"


def cell(text: str) -> str:
    """Table-safe text: pipes escaped, HTML's special characters as entities (``<model>``
    would be read as a tag and vanish), line breaks as spaces, other control characters
    as escapes."""
    text = html.escape(text.replace("\n", " "), quote=False)
    return printable(text.replace("\\", "\\\\").replace("|", "\\|"))
