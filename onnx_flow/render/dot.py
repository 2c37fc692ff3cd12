"""DOT (Graphviz): each model's data flow, with the minimum cut drawn in red.

Operators are boxes labelled with their layer and op; each edge is a tensor labelled
with its width. The edges of the cut are red and thick: of a bottleneck, every tensor on
a minimum cut; of a model that passes, its two extreme cuts. Several models give several
graphs in one file, which ``dot`` reads in turn.
"""

from __future__ import annotations

from collections.abc import Sequence

from onnx_flow.render.wording import cut_tensors
from onnx_flow.report import Failure, Result

__all__ = ["render"]


def render(reports: Sequence[Result], *, color: bool = False) -> str:
    """One ``digraph`` per audited model, from the data flow in its report's profile.

    ``color`` is unused: the format has no colours.
    """
    parts = []
    for report in reports:
        if isinstance(report, Failure) or report.profile is None:
            error = report.error if isinstance(report, Failure) else "no data flow"
            parts.append(f"// {_comment(report.model)}: not audited: {_comment(error)}\n")
            continue
        flow = report.profile
        widths = {p.tensor: p.width for p in flow.points}
        cut = cut_tensors(report)
        lines = [
            f"digraph {_quote(report.model)} {{",
            "  rankdir=TB;",
            '  node [shape=box, fontname="Helvetica", fontsize=10];',
            '  edge [fontname="Helvetica", fontsize=9];',
        ]
        for name, op_type, module in sorted(flow.operators):
            label = f"{module or name}\\n{op_type}"
            lines.append(f"  {_quote(name)} [label={_quote(label, escaped=True)}];")
        for tail, head, tensor in sorted(flow.edges):
            width = widths.get(tensor)
            label = f"{tensor}\\n{width if width is not None else '?'}"
            style = ', color="red", fontcolor="red", penwidth=3' if tensor in cut else ""
            lines.append(
                f"  {_quote(tail)} -> {_quote(head)} [label={_quote(label, escaped=True)}{style}];"
            )
        lines.append("}")
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def _quote(text: str, *, escaped: bool = False) -> str:
    r"""A DOT string; ``escaped`` keeps ``\n`` line breaks made by the caller."""
    body = text.replace('"', '\\"') if escaped else text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{body}"'


def _comment(text: str) -> str:
    return text.replace("\n", " ")
