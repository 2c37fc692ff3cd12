"""The profile drawn with matplotlib (PNG or SVG): the picture of
:mod:`onnx_flow.render.picture`, as on the HTML page, one panel per model. matplotlib is
imported only when a plot is asked for."""

from __future__ import annotations

import io
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
    picture,
)
from onnx_flow.report import Report, Result

__all__ = ["render"]


def render(reports: Sequence[Result], name: str) -> bytes:
    """The figure's bytes in the format ``name``'s suffix says (``.png`` or ``.svg``).

    Raises:
        AuditError: another suffix, or matplotlib is not installed.
    """
    kind = Path(name).suffix.lower().lstrip(".")
    if kind not in ("png", "svg"):
        raise AuditError(f"--plot {name}: the file must end in .png or .svg")
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
    figure = plt.figure(figsize=(11, 4.4 * count), layout="constrained")
    panels = figure.subfigures(count, 1, squeeze=False)[:, 0]
    for panel, shown in zip(panels, drawn, strict=False):
        _draw(panel, shown)
    buffer = io.BytesIO()
    # No timestamps or random ids: the same model gives the same bytes.
    metadata = {"Date": None} if kind == "svg" else {"Software": None}
    figure.savefig(buffer, format=kind, metadata=metadata)
    plt.close(figure)
    return buffer.getvalue()


def _draw(panel: Any, drawn: Picture) -> None:
    """One model's picture on a matplotlib subfigure: the profile over a band of skips
    (when there are skips)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as Curve
    from matplotlib.ticker import MaxNLocator

    if drawn.skips:
        axis, band = panel.subplots(2, 1, sharex=True, height_ratios=(5, 1))
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
    middle = drawn.last / 2
    labelled = 0
    for mark in drawn.marks:
        axis.scatter([mark.depth], [mark.width], color=drawn.cut_colour, zorder=3, s=30)
        if mark.label:
            # Toward the side with room, stacked so that labels never overlap.
            right = mark.depth > middle
            axis.annotate(
                mark.label,
                (mark.depth, mark.width),
                color=drawn.cut_colour,
                xytext=(-8 if right else 8, 8 + 14 * labelled),
                textcoords="offset points",
                ha="right" if right else "left",
            )
            labelled += 1
    axis.set_yscale("log")
    axis.set_ylim(drawn.lowest / 2, drawn.highest * 3)
    axis.set_ylabel("width (log scale)")
    axis.set_title(drawn.title, loc="left", fontsize=10)
    handles = [_handle(Line2D, words, colour, kind) for words, colour, kind in drawn.legend()]
    axis.legend(handles=handles, loc="upper right", fontsize=8, ncols=2, framealpha=0.9)
    for start, end in drawn.skips:
        middle_x = (start + end) / 2
        curve = Curve(
            [(start, 0), (middle_x, -2), (end, 0)], [Curve.MOVETO, Curve.CURVE3, Curve.CURVE3]
        )
        band.add_patch(PathPatch(curve, fill=False, edgecolor=SKIP, alpha=0.6))
    if drawn.skips:
        band.set_ylim(-1.1, 0.05)
        band.set_yticks([])
        band.set_ylabel("skips", rotation=0, ha="right", va="center")
    band.xaxis.set_major_locator(MaxNLocator(integer=True))
    band.set_xlim(0, drawn.last or 1)
    band.set_xlabel("depth (tensors in topological order)")


def _handle(line: Any, words: str, colour: str, kind: str) -> Any:
    """A legend entry drawn as the picture draws it."""
    if kind == "dot":
        return line([], [], color=colour, marker="o", linestyle="", label=words)
    style = {"line": ("-", 2.5), "thin": ("-", 1.0), "dashed": ("--", 1.0), "arc": ("-", 1.0)}
    linestyle, width = style[kind]
    return line([], [], color=colour, linestyle=linestyle, linewidth=width, label=words)
