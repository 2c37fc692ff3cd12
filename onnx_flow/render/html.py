"""HTML: one self-contained page per run: each model's profile as inline SVG (the
picture of :mod:`onnx_flow.render.picture`), the verdict, the layers on the cut and what
widening them gains, the bypassed layers, spectra and findings. No scripts, no external
files."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from onnx_flow.render.picture import (
    CROSS_SECTION,
    MAX_FLOW,
    SKIP,
    TENSOR,
    UNCAPPED,
    Picture,
    lanes,
    picture,
    spaced,
)
from onnx_flow.render.wording import (
    BYPASSED_COLUMNS,
    BYPASSED_TITLE,
    CUT_COLUMNS,
    JOINT_NOTE,
    advice,
    bypassed_row,
    cut_layers,
    cut_row,
    cut_rows,
    cut_title,
    dropped_output_shape,
    head,
    narrowed,
    output_label,
    output_rows,
    spectra_legend,
    spectra_title,
    spectrum_columns,
    spectrum_row,
    verdict,
    verdict_basis,
    width_heading,
)
from onnx_flow.report import Failure, OutputResult, Profile, Report, Result

__all__ = ["render"]

_STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h2 { font-size: 18px; margin-bottom: 4px; }
.bad { color: #c0392b; font-weight: bold; } .ok { color: #1e8449; font-weight: bold; }
table { border-collapse: collapse; margin: 8px 0 24px; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; overflow-wrap: anywhere; }
svg text { font-size: 11px; }
"""


def render(reports: Sequence[Result], *, color: bool = False) -> str:
    """The page for the reports, each drawn from its profile. Where a rank or data cap
    applies, the uncapped widths are drawn in grey beneath.

    ``color`` is unused: the page has colours of its own.
    """
    sections = []
    for report in reports:
        if isinstance(report, Failure) or report.profile is None:
            error = report.error if isinstance(report, Failure) else "no profile"
            sections.append(
                f"<h2>{_e(report.model)}</h2><p class='bad'>not audited: {_e(error)}</p>"
            )
        else:
            sections.append(_section(report, report.profile))
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>onnx-flow</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _section(report: Report, shape: Profile) -> str:
    """A model's verdict, its profile, then, as the text format has them: the outputs
    (of a model with several), the cuts of those with a bottleneck and what would lift
    them, the narrowest cross-section, the bypassed layers, spectra and findings."""
    total = report.total
    css = "bad" if report.bottleneck else "ok"
    basis = verdict_basis(report, report.measure)
    if len(report.outputs) == 1:
        basis += f"; narrowest layers: {cut_layers(total)}"
        cuts = ""
    else:
        failing = (output for output in report.outputs if output.bottleneck)
        cuts = _outputs(report) + "".join(_cut(o, report, f" of output {o.name}") for o in failing)
    cuts += _cut(total, report)
    return (
        f"<h2>{_e(report.model)}</h2>"
        f"<p><span class='{css}'>{verdict(report)}</span> {_e(basis)}</p>"
        f"{''.join(f'<p class=head>{_e(head(h))}</p>' for h in report.heads)}"
        f"{''.join(f'<p>{_e(dropped_output_shape(d))}</p>' for d in report.dropped_output_shapes)}"
        f"{_svg(report, shape)}{cuts}{_bypassed(report)}{_spectra(report)}{_findings(report)}"
    )


#: The columns of the table of outputs.
_OUTPUT_COLUMNS = ("output", "max-flow", "reference", "ratio", "verdict", "narrowest layers")


def _outputs(report: Report) -> str:
    """The table of the outputs, each with its verdict, and the joint flow's row."""
    rows = "".join(
        f"<tr><td>{_e(output_label(o))}</td><td>{o.max_flow}</td><td>{o.reference}</td>"
        f"<td>{o.ratio:.4g}</td><td>{_output_verdict(o)}</td><td>{_e(cut_layers(o))}</td></tr>"
        for o in output_rows(report)
    )
    heads = "".join(f"<th>{_e(c)}</th>" for c in _OUTPUT_COLUMNS)
    note = f"<p>{_e(JOINT_NOTE)}</p>" if report.total.joint else ""
    return f"<h3>outputs</h3><table><tr>{heads}</tr>{rows}</table>{note}"


def _output_verdict(output: OutputResult) -> str:
    """An output's verdict cell; the joint flow's has none (the outputs' rows have it)."""
    if output.joint:
        return "-"
    return "<span class='bad'>bottleneck</span>" if output.bottleneck else "ok"


def _cut(result: OutputResult, report: Report, of: str = "") -> str:
    """The table of the layers on a result's minimum cuts (the first ``_ROWS``), one row
    per module, headed by :func:`cut_title` and ``of``, and what would lift them."""
    rows = cut_rows(result)
    if not rows:
        return ""
    shown = rows[:_ROWS]
    cells = "".join(
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in cut_row(row, result)) + "</tr>"
        for row in shown
    )
    width = width_heading(report)
    heads = "".join(f"<th>{_e(c)}</th>" for c in (*CUT_COLUMNS[:4], width, *CUT_COLUMNS[5:]))
    note = _more(len(rows) - len(shown))
    gains = "".join(f"<p class='gain'>{_e(line)}</p>" for line in advice(result, report.measure))
    return (
        f"<h3>{_e(cut_title(result) + of)}</h3><table><tr>{heads}</tr>{cells}</table>{note}{gains}"
    )


#: Rows of a table on the page (all of them are in the JSON).
_ROWS = 12


def _bypassed(report: Report) -> str:
    """The table of the bypassed layers (the first ``_ROWS``), one row per module."""
    layers = report.bypassed_layers()
    if not layers:
        return ""
    shown = layers[:_ROWS]
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in bypassed_row(layer)) + "</tr>"
        for layer in shown
    )
    heads = "".join(f"<th>{_e(c)}</th>" for c in BYPASSED_COLUMNS)
    note = _more(len(layers) - len(shown))
    return f"<h3>{_e(BYPASSED_TITLE)}</h3><table><tr>{heads}</tr>{rows}</table>{note}"


def _spectra(report: Report) -> str:
    if not report.spectra:
        return ""
    shown = narrowed(report)[:_ROWS]
    columns = spectrum_columns(report)
    heads = "".join(f"<th>{_e(c)}</th>" for c in columns)
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{_e(cell)}</td>" for cell in spectrum_row(s)[: len(columns)])
        + "</tr>"
        for s in shown
    )
    note = _more(len(report.spectra) - len(shown))
    return (
        f"<h3>{_e(spectra_title(report))}</h3><table><tr>{heads}</tr>{rows}</table>"
        f"<p>{_e(spectra_legend(report))}</p>{note}"
    )


def _more(hidden: int) -> str:
    """The line that says how many rows a table leaves to the JSON report."""
    return f"<p>... and {hidden} more (all of them in the JSON report)</p>" if hidden else ""


def _findings(report: Report) -> str:
    if not report.findings:
        return ""
    items = "".join(
        f"<li><b>{_e(f.kind.value)}</b> at {_e(f.module or f.node)}: {_e(f.message)}</li>"
        for f in report.findings
    )
    return f"<h3>Findings from theory</h3><ul>{items}</ul>"


def _svg(report: Report, shape: Profile) -> str:
    """The profile as inline SVG (see :mod:`onnx_flow.render.picture`), scaled to the
    page's width (its labels scale with it): top to bottom, the legend, the lines, the
    lane of the cut's labels, the depth axis, the band of skips and the depth's blocks."""
    drawn = picture(report, shape)
    if not drawn.columns:
        return "<p>no tensor to draw</p>"
    legend, rows = _legend(drawn.legend())
    top = _TOP + rows * _ROW
    scale = _Scale(drawn, top, top + _PLOT)
    labels, lane = _cut_labels(drawn, scale)
    axis = scale.bottom + _GAP + lane * _LANE
    band = _BAND if drawn.skips else 0
    ticks = axis + band + 16
    height = ticks + (_LANE if drawn.blocks else 0) + 24
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {_W} {height}' width='100%'"
        f" style='max-width:{_W}px' role='img' aria-label='{_e(drawn.title)}'>",
        legend,
        f"<line x1='{_LEFT}' y1='{axis}' x2='{_W - _RIGHT}' y2='{axis}' stroke='#999'/>",
        f"<text x='{(_LEFT + _W - _RIGHT) / 2:.0f}' y='{height - 8}' text-anchor='middle'>"
        f"{_e(drawn.depth_title)}</text>",
        f"<text transform='rotate(-90)' x='{-(top + scale.bottom) / 2:.0f}' y='16'"
        " text-anchor='middle'>width (log scale)</text>",
    ]
    for power in range(scale.lowest, math.floor(scale.highest) + 1):
        parts.append(
            f"<text x='{_LEFT - 8}' y='{scale.y(10**power) + 4:.1f}' text-anchor='end'>"
            f"1e{power}</text>"
        )
    for reach in drawn.skips:
        start, end = scale.x(reach.start), scale.x(reach.end)
        depth = 2 * band * drawn.rise(reach)  # a quadratic curve reaches half its control
        parts.append(
            f"<path class='skip' d='M {start:.1f} {axis} Q {(start + end) / 2:.1f}"
            f" {axis + depth:.1f} {end:.1f} {axis}' fill='none' stroke='{SKIP}'"
            f" stroke-opacity='0.6' stroke-width='{reach.stroke:.2f}'/>"
        )
    parts += _blocks(drawn, scale, axis, ticks)
    lines = [
        ([(c.depth, c.uncapped) for c in drawn.columns if c.uncapped], UNCAPPED, 1),
        ([(c.depth, c.width) for c in drawn.columns if c.width], TENSOR, 1),
        ([(c.depth, c.alive) for c in drawn.columns], CROSS_SECTION, 2.5),
    ]
    for coords, colour, stroke in lines:
        if coords:
            line = " ".join(f"{scale.x(d):.1f},{scale.y(w or 1):.1f}" for d, w in coords)
            parts.append(
                f"<polyline points='{line}' fill='none' stroke='{colour}' stroke-width='{stroke}'/>"
            )
    level = scale.y(drawn.max_flow)
    parts.append(
        f"<line class='max-flow' x1='{_LEFT}' y1='{level:.1f}' x2='{_W - _RIGHT}'"
        f" y2='{level:.1f}' stroke='{MAX_FLOW}' stroke-dasharray='6 4'/>"
    )
    parts += labels
    parts.append("</svg>")
    return "".join(parts)


#: The drawing's width, margins and heights, in its own units (it scales to the page):
#: legend rows, the lines, the gap under them, a row of labels, the band of skips.
_W, _LEFT, _RIGHT, _TOP = 960, 72, 24, 12
_ROW, _PLOT, _GAP, _LANE, _BAND = 20, 250, 10, 16, 40

#: A generous estimate of a character's width at 11 px, in the drawing's units.
_CHARACTER = 7


@dataclass(frozen=True, slots=True)
class _Scale:
    """Where depths and widths go: whole decades of width from ``top`` to ``bottom``."""

    drawn: Picture
    top: float
    bottom: float

    @property
    def lowest(self) -> int:
        """The decade at the bottom: at or below the narrowest width."""
        return math.floor(math.log10(self.drawn.lowest))

    @property
    def highest(self) -> float:
        """The decade at the top: a little above the widest width."""
        return max(math.log10(self.drawn.highest) + 0.1, self.lowest + 1)

    def x(self, depth: int) -> float:
        return _LEFT + (_W - _LEFT - _RIGHT) * depth / (self.drawn.last or 1)

    def y(self, width: int) -> float:
        share = (math.log10(max(width, 1)) - self.lowest) / (self.highest - self.lowest)
        return self.bottom - (self.bottom - self.top) * share


def _cut_labels(drawn: Picture, scale: _Scale) -> tuple[list[str], int]:
    """The cut's marks and, in rows under the lines, their labels with leaders up to
    them; and how many rows of labels."""
    parts = []
    for mark in drawn.marks:
        parts.append(
            f"<circle class='cut' cx='{scale.x(mark.depth):.1f}' cy='{scale.y(mark.width):.1f}'"
            f" r='5' fill='{drawn.cut_colour}'/>"
        )
    labelled = [m for m in drawn.marks if m.label]
    boxes = [(scale.x(m.depth), _CHARACTER * len(m.label)) for m in labelled]
    placed = lanes(boxes, gap=12, bounds=(_LEFT, _W - _RIGHT))
    for mark, (left, row), (_, width) in zip(labelled, placed, boxes, strict=True):
        baseline = scale.bottom + _GAP + row * _LANE + 11
        cx = scale.x(mark.depth)
        end = min(max(cx, left + 4), left + width - 4)
        parts.append(
            f"<line class='leader' x1='{cx:.1f}' y1='{scale.y(mark.width) + 5:.1f}'"
            f" x2='{end:.1f}' y2='{baseline - 12:.1f}' stroke='{drawn.cut_colour}'/>"
            f"<text class='cut-label' x='{left:.1f}' y='{baseline:.1f}'"
            f" fill='{drawn.cut_colour}'>{_e(mark.label)}</text>"
        )
    return parts, max((row + 1 for _, row in placed), default=0)


def _blocks(drawn: Picture, scale: _Scale, axis: float, ticks: float) -> list[str]:
    """A tick on the depth axis at each block, a label under the band of skips at each
    block :func:`~onnx_flow.render.picture.spaced` keeps."""
    parts = [
        f"<line x1='{scale.x(b.depth):.1f}' y1='{axis}' x2='{scale.x(b.depth):.1f}'"
        f" y2='{axis + 4}' stroke='#999'/>"
        for b in drawn.blocks
    ]
    shown = spaced(
        drawn.blocks,
        scale.x,
        lambda label: _CHARACTER * len(label),
        gap=10,
        bounds=(_LEFT / 2, _W),
    )
    parts += [
        f"<text class='block' x='{scale.x(b.depth):.1f}' y='{ticks:.0f}'"
        f" text-anchor='middle'>{_e(b.label)}</text>"
        for b in shown
    ]
    return parts


def _legend(entries: list[tuple[str, str, str]]) -> tuple[str, int]:
    """The legend as rows of swatches and words across the top; and how many rows."""
    parts, left, row = [], _LEFT, 0
    for words, colour, kind in entries:
        size = 34 + _CHARACTER * len(words)
        if left + size > _W - _RIGHT and left > _LEFT:
            left, row = _LEFT, row + 1
        y = _TOP + row * _ROW + 6
        if kind == "dot":
            swatch = f"<circle cx='{left + 12}' cy='{y}' r='5' fill='{colour}'/>"
        elif kind == "arc":
            swatch = (
                f"<path d='M {left} {y - 4} Q {left + 12} {y + 8} {left + 24} {y - 4}'"
                f" fill='none' stroke='{colour}'/>"
            )
        else:
            stroke = {"line": "stroke-width='2.5'", "thin": "", "dashed": "stroke-dasharray='6 4'"}
            swatch = (
                f"<line x1='{left}' y1='{y}' x2='{left + 24}' y2='{y}' stroke='{colour}'"
                f" {stroke[kind]}/>"
            )
        parts.append(
            f"<g class='legend'>{swatch}<text x='{left + 30}' y='{y + 4}'>{_e(words)}</text></g>"
        )
        left += size
    return "".join(parts), row + 1


def _e(text: str) -> str:
    return html.escape(text, quote=True)
