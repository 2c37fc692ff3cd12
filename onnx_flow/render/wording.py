"""How every format words a verdict, a result's figures and the layers on its cut."""

from __future__ import annotations

import re

from onnx_flow.report import (
    Branch,
    BypassedLayer,
    CutLayer,
    CutTensor,
    Head,
    LayerSpectrum,
    OutputResult,
    Report,
)

__all__ = [
    "BYPASSED_COLUMNS",
    "BYPASSED_TITLE",
    "CAPPED_WIDTH",
    "CUT_COLUMNS",
    "branch",
    "bypassed_row",
    "cut",
    "cut_layers",
    "cut_row",
    "cut_rows",
    "cut_tensors",
    "cut_title",
    "figures",
    "head",
    "narrowed",
    "printable",
    "spectra_title",
    "verdict",
    "widening",
    "width_heading",
]


#: C0 and C1 control characters, DEL included.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with each control character written as its Python escape (``\\n``,
    ``\\x1b``)."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def verdict(result: OutputResult | Report) -> str:
    """``BOTTLENECK`` or ``no bottleneck``: the headline of a result or a model."""
    return "BOTTLENECK" if result.bottleneck else "no bottleneck"


def figures(result: OutputResult, measure: str | None = None) -> str:
    """``max-flow 4 of 64 (ratio 0.0625)``, or with the measure ``(ratio 0.0625, bits)``."""
    unit = f", {measure}" if measure else ""
    return f"max-flow {result.max_flow} of {result.reference} (ratio {result.ratio:.4g}{unit})"


def head(head: Head) -> str:
    """What judging a head apart means, in one line."""
    layer = head.module or head.node
    return (
        f"head {layer} ({head.d} -> {head.vocabulary} logits) judged apart: the trunk is"
        f" judged up to its input, the head is the softmax_bottleneck finding"
        " (--whole-model judges the logits)"
    )


def cut_tensors(result: OutputResult) -> set[str]:
    """The tensors pictures mark: on some minimum cut of a bottleneck, else on either
    extreme cut."""
    return {t.tensor for t in cut(result)}


def cut(result: OutputResult) -> tuple[CutTensor, ...]:
    """The layers to list: every one on a minimum cut of a bottleneck; for a model that
    passes, its two extreme cuts (nothing is to change, and a residual stack has a
    minimum cut at every layer)."""
    if result.on_cut:
        return result.on_cut
    extremes = {t.tensor: t for t in (*result.cut_near_inputs, *result.cut_near_outputs)}
    return tuple(extremes.values())


#: A graph input carrying less than this share of the flow is left out of the rows a
#: person reads (a sample rate, a flag beside the audio); JSON keeps it on the cut.
_SLIGHT = 0.005


def cut_rows(result: OutputResult) -> tuple[CutLayer, ...]:
    """The layers of :func:`cut`, one row per module (a node without one, or a graph
    input, a row of its own), in graph order; an input that carries a slight share of
    the flow is left out."""
    flow = result.max_flow
    groups: dict[str, list[CutTensor]] = {}
    for tensor in cut(result):
        if tensor.node is None and flow and tensor.width / flow < _SLIGHT:
            continue
        groups.setdefault(_layer(tensor), []).append(tensor)
    return tuple(
        CutLayer(
            layer,
            tuple(dict.fromkeys(t.op or "input" for t in members)),
            tuple(members),
            _carried(members, result),
        )
        for layer, members in groups.items()
    )


def _carried(members: list[CutTensor], result: OutputResult) -> int:
    """What a module's tensors carry across one minimum cut (see :class:`CutLayer`)."""
    names = {t.tensor for t in members}
    extremes = (result.cut_near_inputs, result.cut_near_outputs)
    on_one = [sum(t.width for t in extreme if t.tensor in names) for extreme in extremes]
    return max(*on_one, *(t.width for t in members))


#: The columns of the cut's table, each cell of :func:`cut_row` (the width's heading is
#: :func:`width_heading`).
CUT_COLUMNS = ("layer", "op", "tensor", "shape", "width", "share")


def cut_row(row: CutLayer, result: OutputResult) -> tuple[str, ...]:
    """A cut layer's cells: ``enc.2``, ``MatMul+Add``, the tensor it hands on (and how
    many more it has on the cut), its shape, width and share of the flow."""
    last = row.tensors[-1]
    more = len(row.tensors) - 1
    tensor = last.tensor + (f" (+{more})" if more else "")
    shape = "x".join(str(d) for d in last.shape) if last.shape is not None else "?"
    flow = result.max_flow
    share = f"{row.width / flow:.0%}" if flow else "-"  # of the flow
    layer = "(input)" if row.ops == ("input",) else row.layer
    return (layer, "+".join(row.ops), tensor, shape, str(row.width), share)


#: The layers :func:`cut_layers` names before it counts the rest.
_NAMED = 8


def cut_layers(result: OutputResult) -> str:
    """The layers of :func:`cut_rows`: ``enc.2 (Gemm, 32)``, the first ``_NAMED`` of
    them, then how many more."""
    rows = cut_rows(result)
    named = [f"{row.layer} ({'+'.join(row.ops)}, {row.width})" for row in rows[:_NAMED]]
    hidden = len(rows) - len(named)
    return ", ".join(named) + (f" and {hidden} more" if hidden else "")


def cut_title(result: OutputResult) -> str:
    """The heading of the table of :func:`cut`."""
    if result.cut_near_inputs == result.cut_near_outputs:
        return "minimum cut"
    if result.on_cut:
        return "every layer on a minimum cut (several cuts are as narrow)"
    return "minimum cuts nearest the inputs and nearest the outputs"


def widening(result: OutputResult) -> str | None:
    """What widening the layers on a bottleneck's cuts would gain, and the next limit;
    ``None`` when the report has no such figure."""
    if result.widened is None:
        return None
    flow = result.widened.max_flow
    limit = ", ".join(
        f"{_layer(t)} ({t.op or 'input'}, {t.width})" for t in result.widened.cut_near_inputs
    )
    if flow == result.max_flow:
        return f"widening the layers on the cut alone gains nothing: {limit} is as narrow"
    ratio = flow / result.reference if result.reference else 1.0
    return (
        f"widening the layers on the cut: max-flow {flow} of {result.reference}"
        f" (ratio {ratio:.4g}, +{flow - result.max_flow}); the next limit is {limit}"
    )


#: The heading of the table of :meth:`Report.bypassed_layers`.
BYPASSED_TITLE = "narrow layers bypassed by skips"
#: Its columns, each cell of :func:`bypassed_row`.
BYPASSED_COLUMNS = ("layer", "op", "in -> out", "flow around")


def bypassed_row(layer: BypassedLayer) -> tuple[str, str, str, str]:
    """A bypassed layer's cells: ``adapter.0``, ``MatMul+Add``, ``64 -> 16``, ``64``."""
    return (
        layer.layer,
        "+".join(layer.ops),
        f"{layer.inputs} -> {layer.output}",
        str(layer.bypass),
    )


def narrowed(report: Report) -> list[LayerSpectrum]:
    """The measured layers, those whose energy rank falls furthest below their width
    first (graph order among equals)."""
    return sorted(report.spectra, key=lambda spectrum: -spectrum.shortfall)


def spectra_title(report: Report) -> str:
    """The heading of the spectra table (of a report that has spectra)."""
    energy = report.spectra[0].energy
    return f"layers whose energy rank (at {energy:g}) falls furthest below their width"


#: The width column's heading where ranks cap some widths (``rank``, ``data``).
CAPPED_WIDTH = "width or cap"


def width_heading(report: Report) -> str:
    """The width column's heading: ranks cap some widths under ``rank`` and ``data``."""
    return CAPPED_WIDTH if report.measure in ("rank", "data") else "width"


def branch(branch: Branch) -> str | None:
    """What the audit made of an ``If``: the branch it followed, or, where input values
    would decide it, how to choose one; ``None`` for one only a run decides."""
    inputs = ", ".join(branch.inputs)
    if branch.taken is not None:
        return f"If {branch.node!r} follows its {branch.taken}" + (
            f" (decided by {inputs})" if inputs else ""
        )
    if not branch.inputs:
        return None
    flags = " ".join(f"--input-value {name}=..." for name in branch.inputs)
    return (
        f"If {branch.node!r} is one operator over both branches: its condition reads"
        f" {inputs}; choose a branch with {flags}"
    )


def _layer(tensor: CutTensor) -> str:
    return tensor.module or tensor.node or tensor.tensor
