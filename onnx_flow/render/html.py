"""HTML: one self-contained page per run: each model's profile as inline SVG (the
picture of :mod:`onnx_flow.render.picture`), the verdict, the layers on the cut and what
widening them gains, the bypassed layers, spectra and findings. No scripts, no external
files."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from onnx_flow.render.picture import (
    CROSS_SECTION,
    MAX_FLOW,
    SKIP,
    TENSOR,
    UNCAPPED,
    picture,
)
from onnx_flow.render.wording import (
    BYPASSED_COLUMNS,
    BYPASSED_TITLE,
    CUT_COLUMNS,
    bypassed_row,
    cut_layers,
    cut_row,
    cut_rows,
    cut_title,
    figures,
    head,
    narrowed,
    spectra_title,
    verdict,
    widening,
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
    total = report.total
    css = "bad" if report.bottleneck else "ok"
    width = width_heading(report)
    cuts = _cut(total, width)
    gain = widening(total)
    if gain is not None:
        cuts += f"<p class='gain'>{_e(gain)}</p>"
    return (
        f"<h2>{_e(report.model)}</h2>"
        f"<p><span class='{css}'>{verdict(report)}</span> {_e(figures(total, report.measure))};"
        f" narrowest layers: {_e(cut_layers(total))}</p>"
        f"{''.join(f'<p class=head>{_e(head(h))}</p>' for h in report.heads)}"
        f"{_svg(report, shape)}{cuts}{_bypassed(report)}{_spectra(report)}{_findings(report)}"
    )


def _cut(result: OutputResult, width: str) -> str:
    """The table of the layers on a result's minimum cuts (the first ``_ROWS``), one row
    per module."""
    rows = cut_rows(result)
    if not rows:
        return ""
    shown = rows[:_ROWS]
    cells = "".join(
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in cut_row(row, result)) + "</tr>"
        for row in shown
    )
    heads = "".join(f"<th>{_e(c)}</th>" for c in (*CUT_COLUMNS[:4], width, *CUT_COLUMNS[5:]))
    note = _more(len(rows) - len(shown))
    return f"<h3>{_e(cut_title(result))}</h3><table><tr>{heads}</tr>{cells}</table>{note}"


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
    rows = "".join(
        f"<tr><td>{_e(s.module or s.node or s.tensor)}</td><td>{_e(s.op or '')}</td>"
        f"<td>{s.width}</td><td>{s.rank}</td><td>{s.energy_rank}</td>"
        f"<td>{s.stable_rank:.3g}</td><td>{s.effective_rank:.4g}</td></tr>"
        for s in shown
    )
    note = _more(len(report.spectra) - len(shown))
    return (
        f"<h3>{_e(spectra_title(report))}</h3><table><tr><th>layer</th><th>op</th>"
        "<th>width</th><th>rank</th><th>energy rank</th><th>stable rank</th>"
        f"<th>effective rank</th></tr>{rows}</table>{note}"
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
    page's width: its labels stay inside the drawing at any width."""
    drawn = picture(report, shape)
    if not drawn.columns:
        return "<p>no tensor to draw</p>"
    legend, rows = _legend(drawn.legend())
    top = _TOP + rows * _ROW
    bottom = _H - _BELOW
    # Whole decades from below the narrowest width to above the widest.
    lowest = math.floor(math.log10(drawn.lowest))
    highest = max(math.log10(drawn.highest) + 0.1, lowest + 1)

    def x(depth: int) -> float:
        return _LEFT + (_W - _LEFT - _RIGHT) * depth / (drawn.last or 1)

    def y(width: int) -> float:
        return bottom - (bottom - top) * (math.log10(max(width, 1)) - lowest) / (highest - lowest)

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {_W} {_H}' width='100%'"
        f" style='max-width:{_W}px' role='img' aria-label='{_e(drawn.title)}'>",
        legend,
        f"<line x1='{_LEFT}' y1='{bottom}' x2='{_W - _RIGHT}' y2='{bottom}' stroke='#999'/>",
        f"<text x='{(_LEFT + _W - _RIGHT) / 2:.0f}' y='{_H - 10}' text-anchor='middle'>"
        "depth (tensors in topological order)</text>",
        f"<text transform='rotate(-90)' x='{-(top + bottom) / 2:.0f}' y='16'"
        " text-anchor='middle'>width (log scale)</text>",
    ]
    for power in range(lowest, math.floor(highest) + 1):
        parts.append(
            f"<text x='{_LEFT - 8}' y='{y(10**power) + 4:.1f}' text-anchor='end'>1e{power}</text>"
        )
    for start, end in drawn.skips:
        middle = (x(start) + x(end)) / 2
        parts.append(
            f"<path class='skip' d='M {x(start):.1f} {bottom} Q {middle:.1f} {bottom + 2 * _ARC}"
            f" {x(end):.1f} {bottom}' fill='none' stroke='{SKIP}' stroke-opacity='0.6'/>"
        )
    lines = [
        ([(c.depth, c.uncapped) for c in drawn.columns if c.uncapped], UNCAPPED, 1),
        ([(c.depth, c.width) for c in drawn.columns if c.width], TENSOR, 1),
        ([(c.depth, c.alive) for c in drawn.columns], CROSS_SECTION, 2.5),
    ]
    for coords, colour, stroke in lines:
        if coords:
            line = " ".join(f"{x(d):.1f},{y(w or 1):.1f}" for d, w in coords)
            parts.append(
                f"<polyline points='{line}' fill='none' stroke='{colour}' stroke-width='{stroke}'/>"
            )
    level = y(drawn.max_flow)
    parts.append(
        f"<line class='max-flow' x1='{_LEFT}' y1='{level:.1f}' x2='{_W - _RIGHT}'"
        f" y2='{level:.1f}' stroke='{MAX_FLOW}' stroke-dasharray='6 4'/>"
    )
    labelled = 0
    for mark in drawn.marks:
        cx, cy = x(mark.depth), y(mark.width)
        parts.append(
            f"<circle class='cut' cx='{cx:.1f}' cy='{cy:.1f}' r='5' fill='{drawn.cut_colour}'/>"
        )
        if mark.label:
            # Toward the side with room, stacked so that labels never overlap: above
            # the mark, or below it where the top of the drawing is too near.
            anchor, dx = ("end", -9) if cx > _W / 2 else ("start", 9)
            ly = cy - 9 - 15 * labelled
            if ly < top + 12:
                ly = cy + 20 + 15 * labelled
            labelled += 1
            parts.append(
                f"<text class='cut-label' x='{cx + dx:.1f}' y='{ly:.1f}' text-anchor='{anchor}'"
                f" fill='{drawn.cut_colour}'>{_e(mark.label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


#: The drawing's size and margins, in its own units (it scales to the page).
_W, _H = 960, 400
_LEFT, _RIGHT, _TOP, _BELOW, _ROW, _ARC = 72, 24, 12, 78, 20, 18


def _legend(entries: list[tuple[str, str, str]]) -> tuple[str, int]:
    """The legend as rows of swatches and words across the top; and how many rows."""
    parts, left, row = [], _LEFT, 0
    for words, colour, kind in entries:
        size = 34 + 7 * len(words)  # a generous estimate of the words' width at 11 px
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
