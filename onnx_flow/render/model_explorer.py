"""Node data for Google's Model Explorer and its ONNX adapter (``model-explorer-onnx``).

Model Explorer draws the model's own graph; a node data file colours it. Each node is
keyed by the id the adapter gives it: an operator's ONNX name, made unique the way the
adapter's naming pass (onnx_ir's ``NameFixPass``) makes it (an unnamed node becomes
``node``, ``node_1``, ...; a repeated name gets ``_1``, ``_2``, ...), and ``[value] x``
for a graph input or output. Each carries its width (the capacity of what it writes,
capped under ``rank`` and ``data``) as its value, and a colour: the cut's nodes in the
verdict's colour, bypassed layers' (``layer`` kind) orange, the others blue, darker the
wider (log scale). Nodes of subgraphs and of inlined functions are not keyed.

    onnx-flow audit m.onnx --format model-explorer --output flow.json
    model-explorer m.onnx --extensions=model_explorer_onnx --node_data_paths=flow.json
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence

from onnx_flow.errors import AuditError
from onnx_flow.render.picture import BOTTLENECK, PASS
from onnx_flow.render.wording import cut_tensors, verdict, verdict_basis
from onnx_flow.report import Failure, Report, Result

__all__ = ["adapter_ids", "render"]

#: The colour of a bypassed layer's node.
BYPASSED = "#e67e22"

#: The narrowest and the widest node's colour; widths between take a colour between,
#: on a log scale.
_NARROW, _WIDE = (0xEB, 0xF5, 0xFB), (0x1B, 0x4F, 0x72)


def render(reports: Sequence[Result], *, color: bool = False) -> str:
    """The node data of one audited model, as JSON.

    ``color`` is unused: the file sets colours of its own.

    A model not audited (or a report without its profile) gives node data with no
    node, named by the reason.

    Raises:
        AuditError: several models (a node data file belongs to one graph).
    """
    if len(reports) != 1:
        raise AuditError("--format model-explorer writes the node data of one model at a time")
    (report,) = reports
    if not isinstance(report, Report) or report.profile is None:
        why = report.error if isinstance(report, Failure) else "no profile"
        return _data(f"onnx-flow: {report.model}: not audited: {why}", {})
    flow = report.profile
    widths = {p.tensor: p.width for p in flow.points}
    ids = adapter_ids(name for name, _ in flow.nodes)
    keyed = [(key, outputs) for key, (_, outputs) in zip(ids, flow.nodes, strict=True)]
    for vertex, op_type, _ in flow.operators:
        if op_type in ("Input", "Output"):  # vertex: ``input:x`` or ``output:y``
            name = vertex.split(":", 1)[1]
            keyed.append((f"[value] {name}", (name,)))
    cut = cut_tensors(report)
    bypassed = {t for layer in report.bypassed_layers() for t in layer.tensors}
    values: dict[str, tuple[int, str | None]] = {}
    for key, tensors in keyed:
        sizes = [size for size in map(widths.get, tensors) if size is not None]
        if not sizes:
            continue  # writes nothing that carries samples
        mark = None
        if cut.intersection(tensors):
            mark = BOTTLENECK if report.bottleneck else PASS
        elif bypassed.intersection(tensors):
            mark = BYPASSED
        values[key] = (sum(sizes), mark)
    scale = [math.log10(max(width, 1)) for width, _ in values.values()]
    low, high = min(scale, default=0.0), max(scale, default=0.0)
    results = {
        key: {"value": width, "bgColor": mark or _shade(math.log10(max(width, 1)), low, high)}
        for key, (width, mark) in sorted(values.items())
    }
    name = f"onnx-flow {report.measure.value} width: {verdict(report)}, {verdict_basis(report)}"
    return _data(name, results)


def _data(name: str, results: dict[str, dict[str, object]]) -> str:
    """The node data file: a name for the viewer's list of data, and the nodes'."""
    return json.dumps({"name": name, "results": results}, indent=1) + "\n"


def adapter_ids(names: Iterable[str]) -> list[str]:
    """The node ids the ONNX adapter gives nodes of these names (empty: unnamed), in
    graph order: each name as it is while unused, else the name (``node`` for an unnamed
    one) with the next free ``_N`` suffix."""
    used: set[str] = set()
    counter: Counter[str] = Counter()
    ids = []
    for name in names:
        if not name or name in used:
            base = name or "node"
            name = base
            while name in used:
                counter[base] += 1
                name = f"{base}_{counter[base]}"
        used.add(name)
        ids.append(name)
    return ids


def _shade(level: float, low: float, high: float) -> str:
    """The colour of a width at ``level`` (its log) between the narrowest and widest."""
    where = (level - low) / (high - low) if high > low else 0.5
    channels = (round(n + (w - n) * where) for n, w in zip(_NARROW, _WIDE, strict=True))
    return "#" + "".join(f"{c:02x}" for c in channels)
