"""Text for a person at a terminal: the verdict first, then the layers that form the cut."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import TypeVar

from rich.console import Console
from rich.table import Table
from rich.text import Text

from onnx_flow.render.wording import (
    BYPASSED_COLUMNS,
    BYPASSED_TITLE,
    CAPPED_WIDTH,
    CUT_COLUMNS,
    JOINT_NOTE,
    SPECTRUM_COLUMNS,
    advice,
    branch,
    bypassed_row,
    cut_row,
    cut_rows,
    cut_title,
    dropped_output_shape,
    head,
    narrowed,
    output_label,
    output_rows,
    printable,
    samples_bound,
    spectra_legend,
    spectra_title,
    spectrum_columns,
    spectrum_row,
    verdict,
    verdict_basis,
    width_heading,
)
from onnx_flow.report import (
    Failure,
    Finding,
    Measure,
    OutputResult,
    Report,
    Result,
    Unknown,
)

__all__ = ["render", "safe"]

_WIDTH = 110
#: The width a table of names may take: whatever its longest row needs.
_UNBOUNDED = 1_000_000
_MAX_ROWS = 12
_NUMERIC = frozenset({"width", CAPPED_WIDTH, "share", *BYPASSED_COLUMNS[2:], *SPECTRUM_COLUMNS[2:]})
_Item = TypeVar("_Item")


def render(reports: Sequence[Result], *, color: bool = False) -> str:
    """Render each report as a headline and tables of the cut, the bypassed layers and
    unknown tensors."""
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
        if isinstance(report, Failure):
            _line(console, safe(report.model, "bold"))
            _line(console, Text.assemble(("NOT AUDITED", "bold red"), safe(f"  {report.error}")))
        else:
            _report(console, report)
    # Tables pad every cell; trailing blanks only get in the way of diffs and golden files.
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


#: Settings the report shows in places of their own, not among those the header echoes.
_HEADED = frozenset({"dims", "measure", "energy", "allow"})


def _report(console: Console, report: Report) -> None:
    dims = ", ".join(f"{name}={size}" for name, size in report.dims)
    measure = report.measure.value
    if report.energy is not None:
        measure += f", energy {report.energy:g}"
    given = [text for name, text in report.given if name not in _HEADED]
    _line(
        console,
        safe(report.model, "bold"),
        safe(f"({'; '.join([measure, dims or 'no symbolic dims', *given])})", "dim"),
    )
    width = width_heading(report)
    cut_columns = (*CUT_COLUMNS[:4], width, *CUT_COLUMNS[5:])
    _line(console, _headline(report))
    if report.samples is not None:
        bound = f"data measure over {report.samples} samples: {samples_bound(report)}"
        _line(console, Text(bound, style="dim"))
    for judged in report.heads:
        _line(console, safe(head(judged), "dim"))
    if report.allow:
        _line(console, safe(f"declared bottlenecks: {', '.join(report.allow)}", "dim"))
    for method, count in report.shape_fallbacks:
        _line(console, Text(f"shapes of {count} tensors from {method}", style="dim"))
    for line in filter(None, map(branch, report.branches)):
        _line(console, safe(line, "dim"))
    for dropped in report.dropped_output_shapes:
        _line(console, safe(dropped_output_shape(dropped), "dim"))
    if len(report.outputs) > 1:
        _outputs(console, report)
        for output in report.outputs:
            if output.bottleneck:
                title = f"{cut_title(output)} of output {output.name}"
                _cut(console, output, title, cut_columns, report.measure)
    _cut(console, report.total, cut_title(report.total), cut_columns, report.measure)
    _table(console, BYPASSED_TITLE, BYPASSED_COLUMNS, report.bypassed_layers(), bypassed_row)
    if report.spectra:
        columns = spectrum_columns(report)
        _table(
            console,
            spectra_title(report),
            columns,
            narrowed(report),
            lambda s: spectrum_row(s)[: len(columns)],
        )
        _line(console, safe(spectra_legend(report), "dim"))
    _table(
        console,
        "findings from theory (they leave the flow verdict as it is)",
        ("kind", "layer", "what it means"),
        report.findings,
        _finding_row,
        prose=True,
    )
    _table(
        console,
        "tensors of unknown width (they do not limit the flow)",
        ("tensor", "reason"),
        report.unknown,
        _unknown_row,
    )


def _unbounded(console: Console, table: Table) -> None:
    """Print a table of names as wide as its longest row needs: a name is never cut."""
    width, console.width = console.width, _UNBOUNDED
    console.print(table)
    console.width = width


def _line(console: Console, *parts: Text) -> None:
    """Print a line of its own as it is: rich never wraps it (the terminal does, and
    nothing does when piped), so a list of dims or a layer name is never broken at an
    arbitrary column."""
    console.print(*parts, soft_wrap=True)


def safe(text: str, style: str = "") -> Text:
    """Model-controlled text as it is, control characters shown as escapes: a name
    cannot forge a line, move the cursor or colour the terminal."""
    return Text(printable(text), style=style)


def _headline(report: Report) -> Text:
    """The model's verdict (a bottleneck in any output) and what it rests on."""
    style = "bold red" if report.bottleneck else "bold green"
    return Text.assemble((verdict(report), style), safe(f"  {verdict_basis(report)}"))


def _outputs(console: Console, report: Report) -> None:
    """The table of the outputs, each with its verdict, and the joint flow's row."""
    table = Table("output", "max-flow", "reference", "ratio", "verdict", box=None, padding=(0, 2))
    for output in output_rows(report):
        table.add_row(
            safe(output_label(output)),
            str(output.max_flow),
            str(output.reference),
            f"{output.ratio:.4g}",
            _verdict(output),
        )
    _unbounded(console, table)
    if report.total.joint:
        _line(console, Text(JOINT_NOTE, style="dim"))


def _verdict(result: OutputResult) -> Text:
    if result.joint:
        return Text("-")
    return Text("BOTTLENECK", "red") if result.bottleneck else Text("ok", "green")


def _cut(
    console: Console, result: OutputResult, title: str, columns: tuple[str, ...], measure: Measure
) -> None:
    """The table of the layers on a result's minimum cuts, and what would lift them."""
    _table(console, title, columns, cut_rows(result), lambda row: cut_row(row, result))
    for line in advice(result, measure):
        _line(console, safe(line))


def _finding_row(f: Finding) -> tuple[str, ...]:
    return (f.kind.value, f.module or f.node, f.message)


def _unknown_row(u: Unknown) -> tuple[str, ...]:
    return (u.tensor, u.reason)


def _table(
    console: Console,
    title: str,
    columns: tuple[str, ...],
    items: Sequence[_Item],
    row: Callable[[_Item], tuple[str, ...]],
    *,
    prose: bool = False,
) -> None:
    """Print the first ``_MAX_ROWS`` items as rows, saying how many more there are.

    A table of names and numbers is as wide as its rows (a layer path is never cut); a
    table with ``prose`` wraps at the page width. Only the rows shown are formatted: a
    deep model can list tens of thousands.
    """
    if not items:
        return
    _line(console, safe(title, "italic"))
    table = Table(box=None, padding=(0, 2))
    for column in columns:
        table.add_column(column, justify="right" if column in _NUMERIC else "left")
    for item in items[:_MAX_ROWS]:
        table.add_row(*map(safe, row(item)))  # Text: a name's brackets are no markup
    if prose:
        console.print(table)
    else:
        _unbounded(console, table)
    if len(items) > _MAX_ROWS:
        hidden = len(items) - _MAX_ROWS
        _line(console, Text(f"  ... and {hidden} more (all of them in --format json)", style="dim"))
