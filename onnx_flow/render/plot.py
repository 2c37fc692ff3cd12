"""The profile drawn with matplotlib (PNG or SVG): the picture of
:mod:`onnx_flow.render.picture`, as on the HTML page, one panel per model. matplotlib is
imported only when a plot is asked for."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from onnx_flow.errors import AuditError
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
from onnx_flow.report import Report, Result

__all__ = ["figure", "render"]


def render(reports: Sequence[Result], name: str) -> bytes:
    """The figure's bytes in the format ``name``'s suffix says (``.png`` or ``.svg``).

    Raises:
        AuditError: another suffix, or matplotlib is not installed.
    """
    kind = Path(name).suffix.lower().lstrip(".")
    if kind not in ("png", "svg"):
        raise AuditError(f"--plot {name}: the file must end in .png or .svg")
    drawn = figure(reports)
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    # No timestamps or random ids: the same model gives the same bytes.
    metadata = {"Date": None} if kind == "svg" else {"Software": None}
    drawn.savefig(buffer, format=kind, metadata=metadata)
    plt.close(drawn)
    return buffer.getvalue()


def figure(reports: Sequence[Result]) -> Any:
    """The matplotlib figure, laid out: one panel per report that has a profile.

    Raises:
        AuditError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        matplotlib.rcParams["svg.hashsalt"] = "onnx-flow"  # fixed ids in SVG output
        import matplotlib.pyplot as plt
    except ImportError:
        raise AuditError("--plot needs matplotlib: pip install 'onnx-flow[plot]'") from None
    drawn = [picture(r, r.profile) for r in reports if isinstance(r, Report) and r.profile]
    drawn = [d for d in drawn if d.columns]
    count = max(len(drawn), 1)
    result = plt.figure(figsize=(11, 4.8 * count), layout="constrained")
    panels = result.subfigures(count, 1, squeeze=False)[:, 0]
    axes = [_draw(panel, shown) for panel, shown in zip(panels, drawn, strict=False)]
    # The lines, legends and titles decide where the axes go; the labels placed next
    # are measured in pixels of that layout, which then must not move.
    result.draw_without_rendering()
    result.set_layout_engine("none")
    for (axis, band), shown in zip(axes, drawn, strict=False):
        _label_cut(axis, shown)
        _label_blocks(band, shown)
    return result


def _draw(panel: Any, drawn: Picture) -> tuple[Any, Any]:
    """One model's picture on a matplotlib subfigure: the legend over the profile, over a
    band of skips (when there are skips); its (profile, lowest) axes."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    if drawn.skips:
        axis, band = panel.subplots(2, 1, sharex=True, height_ratios=(5, 1))
        _skips(band, drawn)
    else:  # no band of skips to draw: the depth axis under the profile
        axis = band = panel.subplots(1, 1)
    depths = [c.depth for c in drawn.columns]
    for values, colour, width in (
        ([c.uncapped for c in drawn.columns], UNCAPPED, 1.0),
        ([c.width for c in drawn.columns], TENSOR, 1.0),
        ([c.alive for c in drawn.columns], CROSS_SECTION, 2.5),
    ):
        shown = [(d, v) for d, v in zip(depths, values, strict=True) if v]
        if shown:
            axis.plot(*zip(*shown, strict=True), color=colour, linewidth=width)
    axis.axhline(drawn.max_flow, color=MAX_FLOW, linestyle="--", linewidth=1)
    for mark in drawn.marks:
        axis.scatter([mark.depth], [mark.width], color=drawn.cut_colour, zorder=3, s=30)
    axis.set_yscale("log")
    axis.set_ylim(drawn.lowest / 2, drawn.highest * 1.5)
    axis.set_ylabel("width (log scale)")
    panel.suptitle(drawn.title, x=0.01, ha="left", fontsize=10)
    handles = [_handle(Line2D, words, colour, kind) for words, colour, kind in drawn.legend()]
    axis.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0, 1.02),
        borderaxespad=0,
        fontsize=8,
        ncols=3,
        frameon=False,
    )
    band.set_xlim(0, drawn.last or 1)
    band.set_xlabel(drawn.depth_title)
    if not drawn.blocks:
        band.xaxis.set_major_locator(MaxNLocator(integer=True))
    return axis, band


def _skips(band: Any, drawn: Picture) -> None:
    """The skips as arcs hanging from the top of the band, as deep as their reach."""
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as Curve

    for reach in drawn.skips:
        middle = (reach.start + reach.end) / 2
        curve = Curve(
            [(reach.start, 0), (middle, -2 * drawn.rise(reach)), (reach.end, 0)],
            [Curve.MOVETO, Curve.CURVE3, Curve.CURVE3],
        )
        band.add_patch(
            PathPatch(curve, fill=False, edgecolor=SKIP, alpha=0.6, linewidth=reach.stroke)
        )
    band.set_ylim(-1.1, 0.05)
    band.set_yticks([])
    band.set_ylabel("skips", rotation=0, ha="right", va="center")


#: The cut's labels' size, and the pixels between them and around their rows.
_LABEL_SIZE, _GAP = 9, 6


def _label_cut(axis: Any, drawn: Picture) -> None:
    """The cut's labels in rows under the lowest line, each with a leader to its mark:
    the axis's bottom is lowered to make room for the rows."""
    labelled = [m for m in drawn.marks if m.label]
    if not labelled:
        return
    sizes = [_size(axis, m.label, _LABEL_SIZE) for m in labelled]
    frame = axis.get_window_extent()
    x = [axis.transData.transform((m.depth, m.width))[0] - frame.x0 for m in labelled]
    boxes = [(centre, width) for centre, (width, _) in zip(x, sizes, strict=True)]
    placed = lanes(boxes, gap=2 * _GAP, bounds=(_GAP, frame.width - _GAP))
    row = max(height for _, height in sizes) + _GAP
    rows = max(r for _, r in placed) + 1
    # The rows take the bottom of the axis; the lowest line drawn stays just above them.
    share = (rows * row + 2 * _GAP) / frame.height
    low, high = math.log(drawn.lowest / 1.2), math.log(axis.get_ylim()[1])
    axis.set_ylim(bottom=math.exp((low - share * high) / (1 - share)))
    for mark, (left, r), centre, (width, _) in zip(labelled, placed, x, sizes, strict=True):
        # The leader leaves the label's top where it is nearest the mark.
        start = min(max((centre - left) / width, 0.05), 0.95)
        axis.annotate(
            mark.label,
            (mark.depth, mark.width),
            xytext=(left, _GAP + (rows - 1 - r) * row),
            textcoords="axes pixels",
            color=drawn.cut_colour,
            fontsize=_LABEL_SIZE,
            ha="left",
            va="bottom",
            annotation_clip=False,  # a mark at the last depth sits on the axis's edge
            arrowprops={
                "arrowstyle": "-",
                "color": drawn.cut_colour,
                "linewidth": 0.8,
                "relpos": (start, 1),
            },
        )


def _label_blocks(band: Any, drawn: Picture) -> None:
    """The depth axis's ticks at the blocks, labelled where labels do not touch."""
    if not drawn.blocks:
        return
    size = band.xaxis.get_ticklabels()[0].get_fontsize()
    shown = spaced(
        drawn.blocks,
        lambda depth: band.transData.transform((depth, 0))[0],
        lambda label: _size(band, label, size)[0],
        gap=2 * _GAP,
        bounds=(0, band.get_figure(root=True).bbox.width),
    )
    band.set_xticks([b.depth for b in shown], [b.label for b in shown])
    band.set_xticks([b.depth for b in drawn.blocks], minor=True)


def _size(axis: Any, words: str, size: float) -> tuple[float, float]:
    """The width and height of words drawn at a font size, in pixels of the figure."""
    text = axis.text(0, 0, words, fontsize=size)
    box = text.get_window_extent()
    text.remove()
    return box.width, box.height


def _handle(line: Any, words: str, colour: str, kind: str) -> Any:
    """A legend entry drawn as the picture draws it."""
    if kind == "dot":
        return line([], [], color=colour, marker="o", linestyle="", label=words)
    style = {"line": ("-", 2.5), "thin": ("-", 1.0), "dashed": ("--", 1.0), "arc": ("-", 1.0)}
    linestyle, width = style[kind]
    return line([], [], color=colour, linestyle=linestyle, linewidth=width, label=words)
