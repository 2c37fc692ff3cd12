"""What the profile picture shows, the same on the HTML page and in the plot.

The cross-section along depth (the total width alive at each point, skips included),
each tensor's own width under it (and its width before a rank or data cap, where one
applies), the max-flow as a level line, the cut's tensors marked in the verdict's
colour (red for a bottleneck, green when the model passes) and the skips as arcs. A
deep model has more tensors than a picture has pixels: its depth is split into at most
``COLUMNS`` columns, each drawn at the narrowest it holds, so no dip is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from onnx_flow.render.wording import cut_tensors, figures, verdict
from onnx_flow.report import Point, Profile, Report

__all__ = ["COLUMNS", "Column", "Mark", "Picture", "picture"]

#: The most columns a picture draws along depth.
COLUMNS = 600

#: Colours: of each line, and of the cut for a failing and a passing model.
CROSS_SECTION = "#2e86c1"
TENSOR = "#a9cce3"
UNCAPPED = "#bbbbbb"
MAX_FLOW = "#555555"
SKIP = "#8e44ad"
BOTTLENECK = "#c0392b"
PASS = "#1e8449"

#: The cut's layers a picture names; the rest are in the tables.
_LABELS = 3


@dataclass(frozen=True, slots=True)
class Column:
    """A run of consecutive depths, at the narrowest it holds."""

    depth: int
    """The first depth of the run."""
    alive: int
    """The narrowest cross-section."""
    width: int | None
    """The narrowest tensor of known width (``None``: none known)."""
    uncapped: int | None
    """The narrowest width before a cap, where a cap applies in the run."""


@dataclass(frozen=True, slots=True)
class Mark:
    """A tensor on a minimum cut, and its label (empty for all but the first few)."""

    depth: int
    width: int
    label: str


@dataclass(frozen=True, slots=True)
class Picture:
    """One model's profile, ready to draw."""

    title: str
    last: int
    """The deepest depth (the x axis runs from 0 to it)."""
    columns: tuple[Column, ...]
    skips: tuple[tuple[int, int], ...]
    """(from, to) depths of each skip, one per pair of columns."""
    max_flow: int
    marks: tuple[Mark, ...]
    cut_colour: str
    """:data:`BOTTLENECK` or :data:`PASS`."""
    cut_label: str
    """The legend's words for the marks."""

    @property
    def capped(self) -> bool:
        """Whether a rank or data cap lowers some width (the grey line is drawn)."""
        return any(c.uncapped is not None for c in self.columns)

    def legend(self) -> list[tuple[str, str, str]]:
        """(words, colour, how it is drawn: ``line``, ``thin``, ``dashed``, ``dot`` or
        ``arc``) for each thing the picture shows."""
        entries = [
            ("cross-section: total width alive", CROSS_SECTION, "line"),
            ("narrowest tensor", TENSOR, "thin"),
        ]
        if self.capped:
            entries.append(("width before the cap", UNCAPPED, "thin"))
        entries.append((f"max-flow {self.max_flow}", MAX_FLOW, "dashed"))
        if self.marks:
            entries.append((self.cut_label, self.cut_colour, "dot"))
        if self.skips:
            entries.append(("skip", SKIP, "arc"))
        return entries

    @property
    def highest(self) -> int:
        """The largest width drawn."""
        return max(max(c.alive, c.uncapped or 0, c.width or 0) for c in self.columns) or 1

    @property
    def lowest(self) -> int:
        """The smallest width drawn (at least 1: the scale is logarithmic)."""
        drawn = [self.max_flow, *(v for c in self.columns for v in (c.alive, c.width) if v)]
        return max(min(drawn), 1)


def picture(report: Report, profile: Profile) -> Picture:
    """The picture of a report that has a profile."""
    points = profile.points
    last = max((p.depth for p in points), default=0)
    span = last + 1
    runs: dict[int, list[Point]] = {}
    for point in points:
        runs.setdefault(point.depth * min(COLUMNS, span) // span, []).append(point)
    columns = tuple(_column(run) for run in runs.values())
    column_of = {p.depth: index for index, run in runs.items() for p in run}
    first_depth = {index: run[0].depth for index, run in runs.items()}
    skips = {
        (first_depth[column_of[start]], first_depth[column_of[end]]): None
        for start, end in profile.skips
        if column_of[start] != column_of[end]
    }
    on_cut = cut_tensors(report.total)
    cut = [p for p in points if p.tensor in on_cut and p.width is not None]
    named: dict[str, None] = {}
    marks = []
    for point in cut:
        label = ""
        if point.layer not in named and len(named) < _LABELS:
            named[point.layer] = None
            label = f"{point.layer} ({point.width})"
        assert point.width is not None
        marks.append(Mark(point.depth, point.width, label))
    hidden = len({p.layer for p in cut}) - len(named)
    cut_label = "minimum cut" + (f" ({hidden} more layers in the table)" if hidden else "")
    return Picture(
        title=f"{report.model}: {verdict(report)}, {figures(report.total)}",
        last=last,
        columns=columns,
        skips=tuple(skips),
        max_flow=report.total.max_flow,
        marks=tuple(marks),
        cut_colour=BOTTLENECK if report.bottleneck else PASS,
        cut_label=cut_label,
    )


def _column(run: list[Point]) -> Column:
    widths = [p.width for p in run if p.width is not None]
    capped = [p.elements for p in run if p.elements and p.elements != p.width]
    return Column(
        depth=run[0].depth,
        alive=min(p.alive for p in run),
        width=min(widths, default=None),
        uncapped=min(capped, default=None),
    )
