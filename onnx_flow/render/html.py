"""HTML: one self-contained page per run: each model's width profile as inline SVG
(log widths along depth, caps where measured, skips as arcs, the cut in red), the
verdict and the cut table. No scripts, no external files."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from onnx_flow.render.wording import (
    cut_layers,
    cut_tensors,
    cut_title,
    figures,
    narrowed,
    share,
    spectra_title,
    verdict,
    widening,
    width_heading,
)
from onnx_flow.report import Bypassed, CutTensor, Failure, Profile, Report, Result

__all__ = ["render"]

_W, _H, _PAD = 960, 320, 48

_STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h2 { font-size: 18px; margin-bottom: 4px; }
.bad { color: #c0392b; font-weight: bold; } .ok { color: #1e8449; font-weight: bold; }
table { border-collapse: collapse; margin: 8px 0 24px; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
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
    cuts = _tensors(
        cut_title(total), total.on_cut, (width, "share"), lambda t: (t.width, share(t, total))
    )
    gain = widening(total)
    if gain is not None:
        cuts += f"<p class='gain'>{_e(gain)}</p>"
    bypassed = _tensors(
        "narrow layers bypassed by skips",
        report.bypassed,
        (width, "flow around"),
        lambda t: (t.width, t.bypass),
    )
    return (
        f"<h2>{_e(report.model)}</h2>"
        f"<p><span class='{css}'>{verdict(report)}</span> {_e(figures(total, report.measure))};"
        f" narrowest layers: {_e(cut_layers(total))}</p>"
        f"{_svg(report, shape)}{cuts}{bypassed}{_spectra(report)}{_findings(report)}"
    )


_Tensor = TypeVar("_Tensor", CutTensor, Bypassed)


def _tensors(
    title: str,
    tensors: Sequence[_Tensor],
    columns: tuple[str, ...],
    figures_of: Callable[[_Tensor], tuple[int | str, ...]],
) -> str:
    """A titled table of tensors (the first ``_ROWS``): layer, op, tensor, then
    the given figures."""
    if not tensors:
        return ""
    shown = tensors[:_ROWS]
    rows = "".join(
        f"<tr><td>{_e(t.module or t.node or '(input)')}</td><td>{_e(t.op or 'input')}</td>"
        f"<td>{_e(t.tensor)}</td>{''.join(f'<td>{n}</td>' for n in figures_of(t))}</tr>"
        for t in shown
    )
    heads = "".join(f"<th>{_e(c)}</th>" for c in ("layer", "op", "tensor", *columns))
    note = _more(len(tensors) - len(shown))
    return f"<h3>{_e(title)}</h3><table><tr>{heads}</tr>{rows}</table>{note}"


#: Rows of a table on the page (all of them are in the JSON).
_ROWS = 12


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
    points = [p for p in shape.points if p.width]
    if not points:
        return "<p>no tensor of known width</p>"
    cut = cut_tensors(report.total)
    top = max(math.log10(max(p.elements or p.width or 1, 1)) for p in points) or 1.0
    last = max(p.depth for p in shape.points) or 1

    def x(depth: int) -> float:
        return _PAD + (_W - 2 * _PAD) * depth / last

    def y(width: int) -> float:
        return _H - _PAD - (_H - 2 * _PAD) * math.log10(max(width, 1)) / top

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' role='img'>",
        f"<line x1='{_PAD}' y1='{_H - _PAD}' x2='{_W - _PAD}' y2='{_H - _PAD}' stroke='#999'/>",
        f"<text x='{_PAD}' y='{_H - 16}'>depth (tensors in topological order)</text>",
        f"<text x='4' y='{_PAD - 12}'>width (log)</text>",
    ]
    for power in range(math.ceil(top) + 1):
        parts.append(
            f"<text x='{_PAD - 6}' y='{y(10**power) + 4:.1f}' text-anchor='end'>1e{power}</text>"
        )
    for start, end in shape.skips:
        middle = (x(start) + x(end)) / 2
        parts.append(
            f"<path d='M {x(start):.1f} {_H - _PAD} Q {middle:.1f} {_H - _PAD + 40}"
            f" {x(end):.1f} {_H - _PAD}' fill='none' stroke='#7fb3d5'/>"
        )
    capped = [(x(p.depth), y(p.elements)) for p in points if p.elements and p.elements != p.width]
    for coords, color in (
        (capped, "#bbb"),
        ([(x(p.depth), y(p.width or 1)) for p in points], "#2e86c1"),
    ):
        if coords:
            line = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
            parts.append(f"<polyline points='{line}' fill='none' stroke='{color}'/>")
    for p in points:
        if p.tensor in cut:
            assert p.width is not None
            parts.append(
                f"<circle cx='{x(p.depth):.1f}' cy='{y(p.width):.1f}' r='5' fill='#c0392b'/>"
                f"<text x='{x(p.depth) + 7:.1f}' y='{y(p.width) - 7:.1f}' fill='#c0392b'>"
                f"{_e(p.layer)} ({p.width})</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _e(text: str) -> str:
    return html.escape(text, quote=True)
