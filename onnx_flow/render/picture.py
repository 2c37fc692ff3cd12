"""What the profile picture shows, the same on the HTML page and in the plot.

The cross-section along depth (the total width alive at each point, skips included),
each tensor's own width under it (and its width before a rank or data cap, where one
applies), the max-flow as a level line, the cut's tensors marked in the verdict's
colour (red for a bottleneck, green when the model passes) and the skips as arcs. A
deep model has more tensors than a picture has pixels: its depth is split into at most
``COLUMNS`` columns, each drawn at the narrowest it holds, so no dip is lost.

What keeps a 64-layer picture readable, decided here for both renderers:

- **Depth in the user's layers.** Where the layers carry module paths with numbered
  parts (``model.transformer.h.3.attn``), each numbered module (``h.3``: the path up to
  its first number, less the parts every block shares but the container's name) is a
  *block*, starting at its first tensor; the depth axis is labelled by blocks, at the
  smallest step of their numbers (1, 2, 5, 10, 20, ...) at which no two labels touch
  (:func:`spaced`). Without numbered modules the axis counts tensors.
- **Labels in a lane of their own.** The cut's labels (one per layer, the first few
  layers) sit in rows under the lowest line drawn, each near its mark, joined to it by
  a leader (:func:`lanes`). Every tensor on a cut is at most the max-flow wide and the
  cross-section never falls below the max-flow, so a leader running down from its mark
  never crosses the cross-section. The legend sits above the drawing, outside the data.
- **Skips by reach.** Skips are grouped by the blocks (else the columns) they leave and
  reach: one arc per group, from its first start to its last end, as high as its reach
  is long against the longest, thicker the more skips it holds. A 64-layer decoder's
  1,500 skips are then a row of short arcs, one or two a block, and a long skip stands
  out above them.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from onnx_flow.render.wording import cut_tensors, verdict, verdict_basis
from onnx_flow.report import Point, Profile, Report

__all__ = [
    "COLUMNS",
    "Block",
    "Column",
    "Mark",
    "Picture",
    "Reach",
    "lanes",
    "picture",
    "spaced",
]

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
    """A tensor on a minimum cut, and its label (empty for all but the first tensor of
    each of the first few layers)."""

    depth: int
    width: int
    label: str


@dataclass(frozen=True, slots=True)
class Block:
    """One of the user's numbered layers (``h.3``), where the depth axis is labelled."""

    depth: int
    """Its first tensor's depth."""
    label: str
    number: int
    """The number in its path (``3``)."""


@dataclass(frozen=True, slots=True)
class Reach:
    """The skips that leave one block (or column) and reach another (or the same)."""

    start: int
    """The depth of the first tensor that skips."""
    end: int
    """The depth of the last late reader's output."""
    count: int

    @property
    def stroke(self) -> float:
        """The arc's thickness: 1 for one skip, a half more for each doubling."""
        return 1 + math.log2(self.count) / 2


@dataclass(frozen=True, slots=True)
class Picture:
    """One model's profile, ready to draw."""

    title: str
    last: int
    """The deepest depth (the x axis runs from 0 to it)."""
    columns: tuple[Column, ...]
    blocks: tuple[Block, ...]
    """The user's numbered layers in depth order (empty: the axis counts tensors)."""
    depth_title: str
    """The depth axis's title."""
    skips: tuple[Reach, ...]
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
            entries.append(("skips (higher: longer reach; thicker: more)", SKIP, "arc"))
        return entries

    def rise(self, reach: Reach) -> float:
        """How high an arc rises, as a fraction of the band of skips: its reach against
        the longest, never so low that a short arc looks flat."""
        longest = max(r.end - r.start for r in self.skips)
        return max((reach.end - reach.start) / longest, 0.15)

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
    blocks, depth_title = _blocks(points)
    starts = [b.depth for b in blocks]
    if blocks:
        unit = {p.depth: bisect_right(starts, p.depth) for p in points}
    else:  # columns: a skip within one column is not drawn
        unit = {p.depth: index for index, run in runs.items() for p in run}
    marks, hidden = _marks(report, points)
    cut_label = "minimum cut" + (f" ({hidden} more layers in the table)" if hidden else "")
    return Picture(
        title=f"{report.model}: {verdict(report)}, {verdict_basis(report)}",
        last=last,
        columns=tuple(_column(run) for run in runs.values()),
        blocks=blocks,
        depth_title=depth_title,
        skips=_reaches(profile.skips, unit, within=bool(blocks)),
        max_flow=report.total.max_flow,
        marks=marks,
        cut_colour=BOTTLENECK if report.bottleneck else PASS,
        cut_label=cut_label,
    )


def _marks(report: Report, points: Sequence[Point]) -> tuple[tuple[Mark, ...], int]:
    """The cut's tensors, the first of each of the first ``_LABELS`` layers labelled;
    and how many layers on the cut go unnamed."""
    on_cut = cut_tensors(report)
    named: set[str] = set()
    layers: set[str] = set()
    marks = []
    for point in points:
        if point.tensor not in on_cut or point.width is None:
            continue
        label = ""
        if point.layer not in layers and len(layers) < _LABELS:
            named.add(point.layer)
            label = f"{point.layer} ({point.width})"
        layers.add(point.layer)
        marks.append(Mark(point.depth, point.width, label))
    return tuple(marks), len(layers) - len(named)


def _blocks(points: Sequence[Point]) -> tuple[tuple[Block, ...], str]:
    """The numbered modules along depth, each at its first tensor (none when there are
    fewer than two); and the depth axis's title, naming the path the labels leave out
    where it is the same for all."""
    first: dict[tuple[str, ...], int] = {}
    for point in points:
        key = _numbered(point.layer)
        if key is not None:
            first.setdefault(key, point.depth)
    if len(first) < 2:
        return (), "depth (tensors in topological order)"
    shared = _shared(list(first))
    blocks = tuple(
        Block(depth, ".".join(key[_kept(shared, key) :]), int(key[-1]))
        for key, depth in first.items()
    )
    dropped = {".".join(key[: _kept(shared, key)]) for key in first}
    within = f" of {dropped.pop()}" if len(dropped) == 1 and "" not in dropped else ""
    return blocks, f"depth (the model's layers{within}, in topological order)"


def _numbered(layer: str) -> tuple[str, ...] | None:
    """A module path up to its first numbered part after the first
    (``model.transformer.h.3.attn`` -> ``model, transformer, h, 3``); ``None`` without."""
    parts = [part for part in re.split(r"[./]", layer) if part]
    for index, part in enumerate(parts[1:], start=1):
        if part.isdecimal() and part.isascii():
            return tuple(parts[: index + 1])
    return None


def _shared(keys: Sequence[tuple[str, ...]]) -> int:
    """How many leading parts all the keys share."""
    count = 0
    while all(len(k) > count + 1 and k[count] == keys[0][count] for k in keys):
        count += 1
    return count


def _kept(shared: int, key: tuple[str, ...]) -> int:
    """Where a block's label starts: after the shared parts, but with the container's
    name before the number (``h.3``, not ``3``)."""
    return max(min(shared, len(key) - 2), 0)


def _reaches(
    skips: Sequence[tuple[int, int]], unit: dict[int, int], *, within: bool
) -> tuple[Reach, ...]:
    """The skips grouped by the units (blocks or columns) they leave and reach; skips
    within one unit only when the units are blocks."""
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for start, end in skips:
        if within or unit[start] != unit[end]:
            groups.setdefault((unit[start], unit[end]), []).append((start, end))
    return tuple(
        Reach(min(s for s, _ in group), max(e for _, e in group), len(group))
        for group in groups.values()
    )


def spaced(
    blocks: Sequence[Block],
    x: Callable[[int], float],
    width: Callable[[str], float],
    *,
    gap: float,
    bounds: tuple[float, float],
) -> tuple[Block, ...]:
    """The blocks to label on an axis: of those whose labels, centred on their blocks'
    depths, stay within ``bounds``, the ones whose numbers are multiples of the smallest
    step (1, 2, 5, 10, 20, ...) at which the labels keep ``gap`` apart; past the largest
    number, the first of each run of touching labels."""

    def edges(block: Block) -> tuple[float, float]:
        half = width(block.label) / 2
        return x(block.depth) - half, x(block.depth) + half

    inside = [b for b in blocks if bounds[0] <= edges(b)[0] and edges(b)[1] <= bounds[1]]
    largest = max((b.number for b in inside), default=0)
    for step in _steps():
        wanted = [b for b in inside if b.number % step == 0]
        kept, right = [], -math.inf
        for block in wanted:
            left, end = edges(block)
            if left >= right + gap:
                kept.append(block)
                right = end
        if len(kept) == len(wanted) or step > largest:
            return tuple(kept)
    raise AssertionError("unreachable: the steps grow without end")


def _steps() -> Iterator[int]:
    """1, 2, 5, 10, 20, 50, ..."""
    power = 1
    while True:
        yield from (power, 2 * power, 5 * power)
        power *= 10


def lanes(
    boxes: Sequence[tuple[float, float]], *, gap: float, bounds: tuple[float, float]
) -> list[tuple[float, int]]:
    """Place boxes, each ``(centre, width)``, in rows within ``bounds``: each as near its
    centre as the bounds allow, in the first row where it keeps ``gap`` from every box
    placed before it. Returns each box's (left edge, row)."""
    rows: list[list[tuple[float, float]]] = []
    placed = []
    for centre, width in boxes:
        left = max(min(centre - width / 2, bounds[1] - width), bounds[0])
        row = next(
            (
                index
                for index, taken in enumerate(rows)
                if all(left + width + gap <= a or b + gap <= left for a, b in taken)
            ),
            len(rows),
        )
        if row == len(rows):
            rows.append([])
        rows[row].append((left, left + width))
        placed.append((left, row))
    return placed


def _column(run: list[Point]) -> Column:
    widths = [p.width for p in run if p.width is not None]
    capped = [p.elements for p in run if p.elements and p.elements != p.width]
    return Column(
        depth=run[0].depth,
        alive=min(p.alive for p in run),
        width=min(widths, default=None),
        uncapped=min(capped, default=None),
    )
