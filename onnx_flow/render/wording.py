"""How every format words a verdict, a result's figures and the layers on its cut."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from onnx_flow.report import (
    Branch,
    BypassedLayer,
    CutLayer,
    CutTensor,
    DroppedOutputShape,
    Failure,
    Head,
    LayerSpectrum,
    Measure,
    OutputResult,
    Report,
    Result,
    Shape,
    format_shape,
)

__all__ = [
    "BYPASSED_COLUMNS",
    "BYPASSED_TITLE",
    "CAPPED_WIDTH",
    "CUT_COLUMNS",
    "JOINT_NOTE",
    "SPECTRUM_COLUMNS",
    "advice",
    "branch",
    "bypassed_row",
    "cut",
    "cut_layers",
    "cut_row",
    "cut_rows",
    "cut_tensors",
    "cut_title",
    "dropped_output_shape",
    "figures",
    "head",
    "narrowed",
    "output_label",
    "output_rows",
    "printable",
    "samples_bound",
    "spectra_legend",
    "spectra_title",
    "spectrum_columns",
    "spectrum_row",
    "totals",
    "verdict",
    "verdict_basis",
    "width_heading",
]


#: C0 and C1 control characters, DEL included.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def totals(results: Sequence[Result], spared: Sequence[Mapping[str, Any]] = ()) -> str:
    """``3 models audited, 1 with a bottleneck; 1 not audited``, over ``results`` and
    the JSON lines of earlier results ``spared`` (``--resume``)."""
    bottlenecks = sum(r.bottleneck for r in results) + sum(
        bool(s.get("bottleneck")) for s in spared
    )
    failures = sum(isinstance(r, Failure) for r in results) + sum("error" in s for s in spared)
    audited = len(results) + len(spared) - failures
    said = f"{audited} model{'s' if audited != 1 else ''} audited"
    said += f", {bottlenecks} with a bottleneck" if bottlenecks else ", no bottleneck"
    return f"{said}; {failures} not audited" if failures else said


def printable(text: str) -> str:
    r"""``text`` with each control character written as its Python escape (``\n``,
    ``\x1b``)."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def verdict(result: OutputResult | Report) -> str:
    """``BOTTLENECK`` or ``no bottleneck``: the headline of a result or a model."""
    return "BOTTLENECK" if result.bottleneck else "no bottleneck"


def figures(result: OutputResult, measure: Measure | None = None) -> str:
    """``max-flow 4 of 64 (ratio 0.0625)``, or with the measure ``(ratio 0.0625, bits)``."""
    unit = f", {measure.value}" if measure else ""
    return f"max-flow {result.max_flow} of {result.reference} (ratio {result.ratio:.4g}{unit})"


#: The outputs :func:`verdict_basis` names before it counts the rest.
_NAMED_OUTPUTS = 4


def verdict_basis(report: Report, measure: Measure | None = None) -> str:
    """What the model's :func:`verdict` rests on, the same in every format: a one-output
    model's :func:`figures`; for several outputs, those with a bottleneck (``in 1 of 2
    outputs: a``), or ``in any of 2 outputs``. The flow to all outputs together is no
    verdict (:attr:`~onnx_flow.report.OutputResult.joint`)."""
    outputs = report.outputs
    if len(outputs) == 1:
        return figures(report.total, measure)
    failing = [output_label(o) for o in outputs if o.bottleneck]
    if not failing:
        return f"in any of {len(outputs)} outputs"
    named = ", ".join(failing[:_NAMED_OUTPUTS])
    hidden = len(failing) - _NAMED_OUTPUTS
    more = f" and {hidden} more" if hidden > 0 else ""
    return f"in {len(failing)} of {len(outputs)} outputs: {named}{more}"


#: The name of the joint row in a table of outputs.
_JOINT = "(all outputs, joint)"
#: What the joint row is, said under every table of outputs that has one.
JOINT_NOTE = (
    f"{_JOINT}: the flow to every output at once, shown for information; the verdict"
    " is each output's"
)


def output_rows(report: Report) -> tuple[OutputResult, ...]:
    """The rows of a table of outputs: each output, then the joint flow where the model
    has several (:data:`JOINT_NOTE` says what it is)."""
    return (*report.outputs, *((report.total,) if report.total.joint else ()))


def output_label(output: OutputResult) -> str:
    """An output's name in a table of outputs: ``a``, ``latent (declared)``, or for the
    flow to all of them, ``(all outputs, joint)``."""
    if output.joint:
        return _JOINT
    return f"{output.name} (declared)" if output.declared else output.name


def head(head: Head) -> str:
    """What judging a head apart means, in one line."""
    layer = head.module or head.node
    return (
        f"head {layer} ({head.d} -> {head.vocabulary} logits) judged apart: the trunk is"
        f" judged up to its input, the head is the softmax_bottleneck finding"
        " (--whole-model judges the logits)"
    )


def dropped_output_shape(dropped: DroppedOutputShape) -> str:
    """An output shape declared that the graph does not compute, in one line."""
    return (
        f"output {dropped.output!r} declares {format_shape(dropped.declared)}, the graph gives"
        f" {format_shape(dropped.computed)}: the declaration is dropped"
    )


def cut_tensors(report: Report) -> set[str]:
    """The tensors pictures mark, in the verdict's colour: on some minimum cut of each
    output with a bottleneck; for a model that passes, on either extreme cut of all its
    outputs together."""
    marked = [output for output in report.outputs if output.bottleneck] or [report.total]
    return {t.tensor for result in marked for t in cut(result)}


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
    """The heading of the table of :func:`cut`: a bottleneck's minimum cuts, what is to
    change; for a result that passes (or the joint flow), its narrowest cross-section,
    for information."""
    unique = result.cut_near_inputs == result.cut_near_outputs
    if not result.bottleneck:
        title = "narrowest cross-section" + ("" if unique else "s")
        title += " of all outputs together" if result.joint else ""
        return title + ("" if unique else ", nearest the inputs and nearest the outputs")
    if unique:
        return "minimum cut"
    if result.on_cut:
        return "every layer on a minimum cut (several cuts are as narrow)"
    return "minimum cuts nearest the inputs and nearest the outputs"


def advice(result: OutputResult, measure: Measure = Measure.ELEMENTS) -> list[str]:
    """What would lift a bottleneck, in design terms: a uniform stack's width to raise,
    or each narrow layer's features and the width it needs (and a skip around it where
    its input is wider), then what would limit next; under ``rank`` and ``data``, a
    layer capped below its elements needs directions, not features. The flow figures
    are in JSON (``widened``). Empty when the result is no bottleneck."""
    if not result.bottleneck:
        return []
    rows = [row for row in cut_rows(result) if row.ops != ("input",)]
    if not rows:
        return []
    widened = result.widened
    limit = "" if widened is None else _listed(widened.cut_near_inputs)
    if widened is not None and widened.max_flow == result.max_flow:
        return [f"widening the layers on the cut alone gains nothing: {limit} is as narrow"]
    target = result.reference if widened is None else min(result.reference, widened.max_flow)
    needed = target - result.max_flow
    stream = _stream(rows)
    if stream is not None and len(rows) >= _STACK:
        features = _scaled(stream, rows[0].width + needed, rows[0].width)
        lines = [
            f"the residual stream's width limits: {len(rows)} layers, {rows[0].layer} to"
            f" {rows[-1].layer}, each carry {stream} features per position; widening one"
            f" gains nothing: raise the model's width to at least {features}"
        ]
    else:
        capped = measure in (Measure.RANK, Measure.DATA)
        # A row that only passes on what another maps (a norm, an activation) follows it.
        mapping = [row for row in rows if _axis(row) is not None] or rows[:1]
        lines = [_widen(row, needed, capped=capped) for row in mapping[:_NAMED_ADVICE]]
        if len(mapping) > _NAMED_ADVICE:
            lines.append(f"and {len(mapping) - _NAMED_ADVICE} more layers on the cut")
    if widened is not None and widened.max_flow < result.reference:
        lines.append(f"beyond that, {limit} limits (max-flow {widened.max_flow})")
    return lines


def _listed(tensors: tuple[CutTensor, ...]) -> str:
    """``enc.1 (Relu, 128), x (input, 784)``."""
    return ", ".join(f"{_layer(t)} ({t.op or 'input'}, {t.width})" for t in tensors)


#: Layers on a cut that, all as wide, make a stack whose width is the model's.
_STACK = 3
#: The layers whose widening :func:`advice` spells out.
_NAMED_ADVICE = 3


def _widen(row: CutLayer, needed: int, *, capped: bool) -> str:
    """``enc.2 (Gemm): 128 -> 32 features, needs at least 784``, and the skip."""
    last, first = row.tensors[-1], row.tensors[0]
    axis = _axis(row)
    ops = "+".join(row.ops)
    elements = _elements(last.shape)
    if capped and elements is not None and row.width < elements:
        return (
            f"{row.layer} ({ops}): its {elements} values span {row.width} directions;"
            f" it needs at least {row.width + needed}"
        )
    out = _size(last.shape, axis)
    if out is None:
        return f"{row.layer} ({ops}) carries {row.width}: it needs at least {row.width + needed}"
    unit = "channels" if axis == 1 and len(last.shape or ()) >= 3 else "features"
    maps = f"{_size(first.reads_shape, axis) or '?'} -> {out}"
    line = f"{row.layer} ({ops}): {maps} {unit}, needs at least"
    line += f" {_scaled(out, row.width + needed, row.width)}"
    if first.reads is not None and first.reads > row.width:
        line += f", or a skip around it (its input carries {first.reads})"
    return line


#: Learned ops whose features are channels (axis 1), not the last axis.
_CONVOLUTIONS = frozenset({"Conv", "ConvTranspose"})


def _axis(row: CutLayer) -> int | None:
    """The axis a row maps: the first its output's shape changes from what it reads
    (channels of a Conv, features of a MatMul); for a learned op that keeps the shape,
    its own (channels, or the last axis); ``None`` for a row that keeps its input's
    shape and learns nothing (a norm, an activation: it passes on another's map)."""
    shape, read = row.tensors[-1].shape, row.tensors[0].reads_shape
    if not shape:
        return None
    if read is not None and len(read) == len(shape):
        changed = [i for i, (a, b) in enumerate(zip(read, shape, strict=True)) if a != b]
        if changed:
            return changed[0]
    if row.ops[0] in _CONVOLUTIONS:
        return 1
    return len(shape) - 1 if row.ops[0] in _LINEAR_OPS else None


def _size(shape: Shape, axis: int | None) -> int | None:
    """``shape[axis]`` where it is a size."""
    if shape is None or axis is None or axis >= len(shape):
        return None
    size = shape[axis]
    return size if isinstance(size, int) else None


def _stream(rows: list[CutLayer]) -> int | None:
    """The features per position every row carries, where all carry the same width and
    the same last axis, and two or more are the residual sums of numbered blocks of one
    stack (``h.0``, ``h.1``: an Add, no linear map); else ``None``."""
    features = {_features(row.tensors[-1].shape) for row in rows}
    if len({row.width for row in rows}) != 1 or len(features) != 1:
        return None
    sums = [row for row in rows if "Add" in row.ops and _LINEAR_OPS.isdisjoint(row.ops)]
    blocks = [_BLOCK.sub("*", row.layer) for row in sums if _BLOCK.search(row.layer)]
    if not any(blocks.count(pattern) > 1 for pattern in blocks):
        return None
    (shared,) = features
    return shared


#: Ops that make a row a learned map, not a residual sum.
_LINEAR_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum"})
#: A numbered part of a layer path after a named one (``h.3``, ``layers/3``): one block
#: of a stack (a Sequential's own ``0``, ``2`` are no stack).
_BLOCK = re.compile(r"(?<=[^\d./][./])\d+(?=[./]|$)")


def _elements(shape: Shape) -> int | None:
    """A shape's element count, ``None`` unless every dim is a size."""
    sizes = [d for d in shape or () if isinstance(d, int)]
    return math.prod(sizes) if shape is not None and len(sizes) == len(shape) else None


def _features(shape: Shape) -> int | None:
    """A shape's last axis (its features), ``None`` when unknown or a scalar."""
    return shape[-1] if shape and isinstance(shape[-1], int) else None


def _scaled(features: int, width: int, of: int) -> int:
    """The features that make a layer of ``features`` at width ``of`` as wide as
    ``width``: the positions stay."""
    return -(-features * width // of)


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
    """The measured layers, those whose energy rank falls furthest below a random
    matrix's first (graph order among equals)."""
    return sorted(report.spectra, key=lambda spectrum: -spectrum.below_random)


def spectra_title(report: Report) -> str:
    """The heading of the spectra table (of a report that has spectra)."""
    energy = report.spectra[0].energy
    capped = "; * capped by --energy" if report.energy is not None else ""
    return (
        f"layers furthest below a random matrix of their shape (energy rank at {energy:g}{capped})"
    )


#: The spectra table's columns: ``matrix`` is what the singular values are of.
SPECTRUM_COLUMNS = (
    "layer",
    "op",
    "matrix",
    "rank",
    "energy rank",
    "random",
    "stable",
    "random stable",
    "dead",
)


def spectrum_columns(report: Report) -> tuple[str, ...]:
    """The spectra table's columns for the report: ``dead`` only where the activations
    were measured (``data``); weights have no dead units to show."""
    return SPECTRUM_COLUMNS if report.measure is Measure.DATA else SPECTRUM_COLUMNS[:-1]


def spectrum_row(spectrum: LayerSpectrum) -> tuple[str, ...]:
    """A spectrum's cells: ``fc``, ``Gemm``, ``64x256``, ``64``, ``12*``, ``50``,
    ``1.4``, ``16.2``, and the dead units (``3 channels`` of an image tensor)."""
    rows, columns = spectrum.matrix
    matrix = f"{rows}x{columns}" + (f" x{spectrum.blocks}" if spectrum.blocks > 1 else "")
    if spectrum.dead_channels:
        dead = f"{spectrum.dead_channels} channels"
    else:
        dead = "" if spectrum.dead_units is None else str(spectrum.dead_units)
    return (
        spectrum.module or spectrum.node or spectrum.tensor,
        spectrum.op or "",
        matrix,
        str(spectrum.rank),
        f"{spectrum.energy_rank}{'*' if spectrum.capped else ''}",
        str(spectrum.baseline_energy_rank),
        f"{spectrum.stable_rank:.3g}",
        f"{spectrum.baseline_stable_rank:.3g}",
        dead,
    )


def samples_bound(report: Report) -> str:
    """What the number of samples bounds: ``no capacity exceeds 99 (the samples less
    their mean)``."""
    samples = report.samples or 0
    if report.centred:
        return f"no capacity exceeds {max(samples - 1, 0)} (the samples less their mean)"
    return f"no capacity exceeds {samples}"


def spectra_legend(report: Report) -> str:
    """What the spectra table's ``matrix`` and ``dead`` mean for the report's measure."""
    if report.measure is Measure.DATA:
        centred = "less their mean" if report.centred else "as they are"
        return (
            f"matrix: samples{' - 1' if report.centred else ''} x elements of the"
            f" activations ({centred}); dead: elements the same for every sample"
        )
    return (
        "matrix: the weight as stored, a Conv's out x in/groups*kernel (x groups);"
        " random: a random matrix of that shape (Marchenko-Pastur)"
    )


#: The width column's heading where ranks cap some widths (``rank``, ``data``).
CAPPED_WIDTH = "width or cap"


def width_heading(report: Report) -> str:
    """The width column's heading: ranks cap some widths under ``rank`` and ``data``."""
    return CAPPED_WIDTH if report.measure in (Measure.RANK, Measure.DATA) else "width"


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
