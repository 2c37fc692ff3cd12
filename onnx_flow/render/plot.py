"""The width profile drawn with matplotlib (PNG or SVG): the same picture as the HTML
report's, one panel per model. matplotlib is imported only when a plot is asked for."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from onnx_flow.errors import AuditError
from onnx_flow.render.wording import cut_tensors, figures, verdict
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
    drawn = [(r, r.profile) for r in reports if isinstance(r, Report) and r.profile]
    figure, axes = plt.subplots(
        max(len(drawn), 1), 1, figsize=(10, 3.2 * max(len(drawn), 1)), squeeze=False
    )
    for axis, (report, shape) in zip(axes[:, 0], drawn, strict=False):
        points = [p for p in shape.points if p.width]
        axis.plot(
            [p.depth for p in points],
            [p.width for p in points],
            color="#2e86c1",
            label=report.measure,
        )
        capped = [p for p in points if p.elements and p.elements != p.width]
        if capped:
            axis.plot(
                [p.depth for p in capped],
                [p.elements for p in capped],
                color="#bbbbbb",
                label="uncapped",
            )
        cut = cut_tensors(report.total)
        for p in points:
            if p.tensor in cut:
                axis.scatter([p.depth], [p.width], color="#c0392b", zorder=3)
                axis.annotate(
                    f"{p.layer} ({p.width})",
                    (p.depth, p.width or 1),
                    color="#c0392b",
                    xytext=(5, 5),
                    textcoords="offset points",
                )
        axis.set_yscale("log")
        axis.set_xlabel("depth (tensors in topological order)")
        axis.set_ylabel("width")
        axis.set_title(f"{report.model}: {verdict(report)}, {figures(report.total)}")
        axis.legend(loc="upper right")
    figure.tight_layout()
    buffer = io.BytesIO()
    # No timestamps or random ids: the same model gives the same bytes.
    metadata = {"Date": None} if kind == "svg" else {"Software": None}
    figure.savefig(buffer, format=kind, metadata=metadata)
    plt.close(figure)
    return buffer.getvalue()
