"""The audit's result: frozen records, and ``to_dict`` spelling the JSON contract.

Every format renders this one object; nothing downstream recomputes a figure. Keys
named in the design's report contract are never renamed; new keys may be added. This
module imports neither onnx nor networkx: renderers and other tools read it alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum, unique
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = [
    "SCHEMA_VERSION",
    "Branch",
    "Bypassed",
    "BypassedLayer",
    "Change",
    "Comparison",
    "CutLayer",
    "CutTensor",
    "DroppedOutputShape",
    "Failure",
    "Figures",
    "Finding",
    "FindingKind",
    "FindingLayer",
    "Head",
    "LayerSpectrum",
    "Measure",
    "OutputResult",
    "Point",
    "Profile",
    "Report",
    "Result",
    "Shape",
    "SpectrumFall",
    "TensorKind",
    "Unknown",
    "Unused",
    "Widened",
    "format_shape",
]

SCHEMA_VERSION = 1

#: A tensor's dims (a size, a symbolic name or ``None``), ``None`` when its rank is unknown.
Shape = tuple[int | str | None, ...] | None


@dataclass(frozen=True, slots=True)
class CutTensor:
    """A tensor on a minimum cut and the layer that produces it."""

    tensor: str
    width: int
    shape: Shape
    node: str | None
    """Producing node's name; ``None`` for a graph input."""
    op: str | None
    module: str | None
    """Framework layer path (``enc.2``); ``None`` when the model does not say."""
    reads: int | None = None
    """The width of the widest sample-carrying tensor its producer reads (what the layer
    maps from); ``None`` for a graph input."""
    reads_shape: Shape = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this tensor."""
        return {
            "tensor": self.tensor,
            "width": self.width,
            "shape": _shape(self.shape),
            "node": self.node,
            "op": self.op,
            "module": self.module,
            "reads": self.reads,
        }


@unique
class TensorKind(str, Enum):
    """What a narrow tensor is (:mod:`onnx_flow.judge.kinds` gives the rules)."""

    LAYER = "layer"
    """The output of a learned transform, and what follows it within its module."""
    STATISTIC = "statistic"
    """A reduction of a wider tensor (a norm's mean or variance) and what follows it."""
    GATE = "gate"
    """A Sigmoid multiplied into a wider tensor, and what is computed only for it."""
    MASK = "mask"
    """A comparison's or logical op's result (attention masks) and what follows it."""
    QUANTISATION = "quantisation"
    """A scale or zero point of a (de)quantisation, and what is computed only for it."""
    RANDOM = "random"
    """The output of a random op, and what follows from it alone."""
    INPUT = "input"
    """A data input of the model, and what follows from inputs alone."""
    ATTENTION_LOGITS = "attention_logits"
    """Q K^T (a product of two tensors that carry samples) and what follows it."""
    OTHER = "other"
    """Anything else: a mix, or a layer's output handed on to another module."""


@dataclass(frozen=True, slots=True)
class CutLayer:
    """The tensors of one module on a minimum cut: one row a person reads."""

    layer: str
    """The module's path; for a node without one, the node's name; for a graph input,
    the input's name."""
    ops: tuple[str, ...]
    """The ops producing its tensors on the cut, each once, in graph order (``input``
    for a graph input)."""
    tensors: tuple[CutTensor, ...]
    """Its tensors on the cut, in graph order: the last is what it hands on."""
    width: int
    """What it carries across one minimum cut: the sum of its tensors on an extreme cut,
    or its widest tensor, whichever is more (a Linear's MatMul and Add outputs are two
    cuts as narrow, not one twice as wide)."""


class Bypassed(NamedTuple):
    """A tensor narrower than the flow (width < F) that other paths go around.

    A named tuple: a deep residual graph has one per narrow tensor, 100,000s of them,
    and a tuple is made in a third of the time of a frozen dataclass.
    """

    tensor: str
    width: int
    node: str | None
    op: str | None
    module: str | None
    bypass: int
    """The max-flow with this tensor removed: what flows around it."""
    kind: TensorKind = TensorKind.OTHER
    """What the tensor is: only ``layer`` tensors are layers a person reads of."""
    reads: int | None = None
    """For a ``layer`` tensor, the width of the widest sample-carrying tensor its
    producer reads (what the layer maps from); ``None`` for other kinds."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this tensor: its fields, in order."""
        return {
            "tensor": self.tensor,
            "width": self.width,
            "node": self.node,
            "op": self.op,
            "module": self.module,
            "bypass": self.bypass,
            "kind": self.kind.value,
            "reads": self.reads,
        }


class BypassedLayer(NamedTuple):
    """The ``layer`` tensors of one module that skips go around: one row a person reads.

    A named tuple, like :class:`Bypassed`: a deep residual graph has 10,000s of rows.
    """

    layer: str
    """The module's path; for a node without one, the node's name."""
    ops: tuple[str, ...]
    """The ops producing its narrow tensors, each once, in graph order."""
    tensors: tuple[str, ...]
    inputs: int
    """The width of what its first narrow tensor's producer maps from (a Linear's input)."""
    output: int
    """The width of what it hands on: its last narrow tensor."""
    bypass: int
    """The least max-flow with one of its tensors removed."""


class LayerSpectrum(NamedTuple):
    """The spectrum of one measured linear map's weight (``rank``) or one tensor's
    activations over the samples (``data``)."""

    tensor: str
    """The map's output, or the measured tensor."""
    node: str | None
    module: str | None
    op: str | None
    width: int
    """The most directions it could pass: the smaller side of the weight (summed over a
    Conv's groups), or the tensor's elements."""
    rank: int
    """Numerical rank (numpy's ``matrix_rank`` tolerance)."""
    energy_rank: int
    """The fewest singular values holding ``energy`` of the sum of their squares."""
    stable_rank: float
    """||W||_F^2 / ||W||_2^2."""
    effective_rank: float
    """exp(entropy of the singular values normalised to sum 1)."""
    energy: float
    """The fraction ``energy_rank`` holds."""
    matrix: tuple[int, int] = (0, 0)
    """The matrix the values are of: a weight as stored (a Conv's out x in/groups x
    kernel, per group), or the activations (samples, less one when centred, x width)."""
    blocks: int = 1
    """The Conv's groups: ``matrix`` is each group's block."""
    baseline_energy_rank: int = 0
    """The energy rank (at ``energy``) a random matrix of the same shape has."""
    baseline_stable_rank: float = 0.0
    """The stable rank a random matrix of the same shape has."""
    margin: int = 0
    """``baseline_energy_rank`` less ``energy_rank``: how far below random it is."""
    capped: bool = False
    """Whether ``--energy`` capped it at its energy rank (clearly below the baseline)."""
    dead_units: int | None = None
    """``data``: elements whose value is the same for every sample."""
    dead_channels: int | None = None
    """``data``, of an image tensor (N, C, H, W): channels all of whose elements are."""
    sketched: bool = False
    """``data``: measured through a count sketch of its columns (a wide tensor)."""

    @property
    def below_random(self) -> float:
        """How far the energy rank falls below a random matrix's, as a fraction of it."""
        return self.margin / self.baseline_energy_rank if self.baseline_energy_rank else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this spectrum: its fields, in order."""
        return self._asdict()


@dataclass(frozen=True, slots=True)
class Unknown:
    """A tensor that carries sample information but whose width could not be resolved."""

    tensor: str
    reason: str
    node: str | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this tensor."""
        return {"tensor": self.tensor, "reason": self.reason, "node": self.node}


@dataclass(frozen=True, slots=True)
class Unused:
    """A setting that names something the model lacks (a dim, an input, a layer), left
    out for it: several models share the settings of a run or a project."""

    setting: str
    """The setting's name (``dims``, ``input_shapes``, ``input_values``, ``allow``)."""
    name: str
    """What it names: the dim, the input or the layer."""
    option: str
    """As the command line gives it: ``--dim sequence=16``."""
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this setting."""
        return {
            "setting": self.setting,
            "name": self.name,
            "option": self.option,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Branch:
    """An ``If`` of the graph, and the branch the audit follows."""

    node: str
    condition: str
    """The tensor the ``If`` reads as its condition."""
    taken: str | None
    """``then_branch`` or ``else_branch``; ``None`` when the condition is not known
    before a run: the ``If`` is one operator whose outputs read all either branch reads."""
    inputs: tuple[str, ...]
    """The data inputs the condition is computed from (``--input-value`` decides them)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this ``If``."""
        return {
            "node": self.node,
            "condition": self.condition,
            "branch": self.taken,
            "inputs": list(self.inputs),
        }


@dataclass(frozen=True, slots=True)
class DroppedOutputShape:
    """A graph output whose declared shape the graph does not compute (another rank, or
    another size on a fixed dim): the declaration is dropped, as stale ``value_info`` is,
    and the output has the shape the graph gives."""

    output: str
    declared: tuple[int | str | None, ...]
    """The shape declared, at the bound dims."""
    computed: tuple[int | str | None, ...]
    """The shape the graph gives (by inference, or by onnxruntime)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this output's declaration."""
        return {
            "output": self.output,
            "declared": list(self.declared),
            "computed": list(self.computed),
        }


@unique
class Measure(str, Enum):
    """What a width counts."""

    ELEMENTS = "elements"
    BITS = "bits"
    """Elements x the bits of the element type."""
    RANK = "rank"
    """Elements, each linear map's output capped at its weight's rank
    (:mod:`onnx_flow.measure.rank`)."""
    DATA = "data"
    """Elements, each tensor capped at the rank of its activations over real samples
    (:mod:`onnx_flow.measure.data`)."""


@unique
class FindingKind(str, Enum):
    """The bottlenecks known by name (:mod:`onnx_flow.judge.findings`)."""

    SOFTMAX_BOTTLENECK = "softmax_bottleneck"
    """A linear map from width d to V logits, d + 1 < V (Yang et al., ICLR 2018)."""
    ATTENTION_HEAD_RANK = "attention_head_rank"
    """An attention head size below both its queries and its keys (Bhojanapalli et al.,
    ICML 2020)."""
    ATTENTION_WITHOUT_SKIP = "attention_without_skip"
    """An attention with no path around it to the outputs (Dong et al., ICML 2021)."""


class FindingLayer(NamedTuple):
    """One layer that a finding reported once for several layers stands for."""

    node: str
    module: str | None
    tensor: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this layer: its fields, in order."""
        return self._asdict()


class Figures(Mapping[str, Any]):
    """A finding's figures by name, read-only as the record that holds them."""

    __slots__ = ("_figures",)

    def __init__(self, figures: Mapping[str, Any] = MappingProxyType({})) -> None:
        self._figures = dict(figures)

    def __getitem__(self, name: str) -> Any:
        return self._figures[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._figures)

    def __len__(self) -> int:
        return len(self._figures)

    def __repr__(self) -> str:
        return f"Figures({self._figures!r})"


@dataclass(frozen=True, slots=True)
class Finding:
    """One named bottleneck, with the figures its kind defines; or the same bottleneck
    in several layers whose module paths differ only in their numbers (the 12 layers
    of an encoder), reported once."""

    kind: FindingKind
    message: str
    node: str
    """The node where it is found; for several layers, the first one's."""
    module: str | None
    """Its layer; for several layers, their pattern, numbers as ``*``
    (``encoder.layer.*.attention.self``)."""
    tensor: str
    """The tensor where it is found; for several layers, the first one's."""
    figures: Mapping[str, Any] = field(default_factory=Figures)
    """The figures its kind defines (a :class:`Figures`, whatever was given)."""
    layers: tuple[FindingLayer, ...] = ()
    """Every layer a finding reported once for several stands for, in graph order;
    empty for a finding in one layer."""

    def __post_init__(self) -> None:
        if not isinstance(self.figures, Figures):
            object.__setattr__(self, "figures", Figures(self.figures))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: kind, message, where, the figures, then the layers."""
        return {
            "kind": self.kind.value,
            "message": self.message,
            "node": self.node,
            "module": self.module,
            "tensor": self.tensor,
            **self.figures,
            "layers": [layer.to_dict() for layer in self.layers],
        }


@dataclass(frozen=True, slots=True)
class Point:
    """One tensor on the profile."""

    tensor: str
    depth: int
    width: int | None
    """Capacity in the measure (``None`` when unknown)."""
    elements: int | None
    """The width before a rank or data cap, where one applies; else ``width``."""
    layer: str
    """The producing layer's module path, else its node name, else the tensor."""
    alive: int
    """The cross-section here: the total width of the tensors alive at this depth."""


@dataclass(frozen=True, slots=True)
class Profile:
    """A model's widths along its depth, and its data flow (what pictures draw)."""

    points: tuple[Point, ...]
    skips: tuple[tuple[int, int], ...]
    """(depth of the tensor, depth of what its late reader writes), each once."""
    operators: tuple[tuple[str, str, str | None], ...]
    """(vertex, op type, module) of the data flow; ``input:X`` and ``output:X`` too."""
    edges: tuple[tuple[str, str, str], ...]
    """(producer vertex, reader vertex, tensor): each carrying tensor to each reader."""
    nodes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(the node's name as its file writes it, empty when it has none; the tensors it
    writes) for every node, in graph order: what viewers that name nodes themselves
    key them by."""


@dataclass(frozen=True, slots=True)
class Head:
    """A model's head judged apart from its trunk: the fixed linear map from the trunk's
    last hidden state (width ``d`` per position) to ``vocabulary`` logits, d + 1 <
    vocabulary. The trunk is audited up to ``tensor``; the head's squeeze is the
    ``softmax_bottleneck`` finding."""

    tensor: str
    """The head's input: where the trunk ends."""
    width: int
    """The trunk end's width in the measure (all positions)."""
    node: str
    """The head's linear map (MatMul or Gemm)."""
    module: str | None
    d: int
    vocabulary: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this head."""
        return {
            "tensor": self.tensor,
            "width": self.width,
            "node": self.node,
            "module": self.module,
            "d": self.d,
            "vocabulary": self.vocabulary,
        }


@dataclass(frozen=True, slots=True)
class Widened:
    """What widening a bottleneck would gain: the flow with every tensor on a minimum
    cut (other than the inputs and outputs) unbounded, and the cut that then limits it."""

    max_flow: int
    cut_near_inputs: tuple[CutTensor, ...]
    """The next limit: the minimum cut nearest the inputs of the widened network."""


@dataclass(frozen=True, slots=True)
class OutputResult:
    """The flow from the inputs to one output (or to all outputs together)."""

    name: str
    max_flow: int
    reference: int
    """R = min(width of the inputs the output depends on, width of the output)."""
    threshold: float
    cut_near_inputs: tuple[CutTensor, ...]
    cut_near_outputs: tuple[CutTensor, ...]
    declared: bool = False
    """An output that a declared bottleneck adds: the end of the part before it."""
    on_cut: tuple[CutTensor, ...] = ()
    """For a bottleneck, every tensor on some minimum cut, in graph order: the extremes
    and all between; empty when it is no bottleneck (nothing to change)."""
    widened: Widened | None = None
    """For a bottleneck, the flow with the layers on its cuts widened; ``None`` when it
    is no bottleneck or its cuts hold only inputs and outputs."""
    head: Head | None = None
    """The head judged apart: the output's figures are its trunk's, up to the head's
    input; ``None`` when the output is judged as it stands."""
    joint: bool = False
    """The flow to all outputs of a model with several, together: figures shown for
    information, never a verdict. Two outputs computed from one 256-wide state each get
    all they need, yet together carry 256 of their 257 values: the model passes."""

    @property
    def ratio(self) -> float:
        """F / R; 1.0 when R is 0 (nothing to deliver, nothing lost)."""
        return self.max_flow / self.reference if self.reference else 1.0

    @property
    def bottleneck(self) -> bool:
        """Whether the ratio is below the threshold; never for the :attr:`joint` flow (a
        model with several outputs has a bottleneck where one of them has)."""
        return not self.joint and self.ratio < self.threshold

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this output."""
        return {
            "name": self.name,
            "max_flow": self.max_flow,
            "reference": self.reference,
            "ratio": self.ratio,
            "bottleneck": self.bottleneck,
            "cut_near_inputs": [t.to_dict() for t in self.cut_near_inputs],
            "cut_near_outputs": [t.to_dict() for t in self.cut_near_outputs],
            "on_cut": self.on_cut_dicts(),
            "widened": self.widened_dict(),
            "declared": self.declared,
            "head": None if self.head is None else self.head.to_dict(),
        }

    def on_cut_dicts(self) -> list[dict[str, Any]]:
        """The tensors on some minimum cut, each with its ``share`` of the flow."""
        flow = self.max_flow
        return [{**t.to_dict(), "share": t.width / flow if flow else 0.0} for t in self.on_cut]

    def widened_dict(self) -> dict[str, Any] | None:
        """The JSON object of :attr:`widened`: its flow, ratio, gain and next cut."""
        if self.widened is None:
            return None
        flow = self.widened.max_flow
        return {
            "max_flow": flow,
            "ratio": flow / self.reference if self.reference else 1.0,
            "gain": flow - self.max_flow,
            "cut_near_inputs": [t.to_dict() for t in self.widened.cut_near_inputs],
        }


@dataclass(frozen=True, slots=True)
class Report:
    """The audit of one model."""

    model: str
    """The path as given (``<model>`` for a model passed in memory)."""
    measure: Measure
    dims: tuple[tuple[str, int], ...]
    """Symbolic dims bound for the audit, sorted by name."""
    threshold: float
    total: OutputResult
    """All outputs together (one super-sink, :attr:`OutputResult.joint`); for one
    output, that output's figures."""
    outputs: tuple[OutputResult, ...]
    """Graph outputs in graph order, then the outputs declared bottlenecks add."""
    bypassed: tuple[Bypassed, ...]
    unknown: tuple[Unknown, ...]
    inputs: tuple[tuple[str, int], ...]
    """Data inputs and their widths."""
    shape_fallbacks: tuple[tuple[str, int], ...] = ()
    """How shapes ONNX inference left open were resolved: (method, tensors)."""
    branches: tuple[Branch, ...] = ()
    """The graph's ``If`` nodes and the branch followed in each."""
    dropped_output_shapes: tuple[DroppedOutputShape, ...] = ()
    """Output shapes declared that the graph does not compute, dropped, in graph order."""
    allow: tuple[str, ...] = ()
    """Declared bottlenecks as given (``--allow``)."""
    unused: tuple[Unused, ...] = ()
    """Settings that name something this model lacks, left out for it."""
    given: tuple[tuple[str, str], ...] = ()
    """The settings that differ from their defaults: (name, as the command line gives
    it: ``--input-shape x=1,3,48,320``)."""
    samples: int | None = None
    """For the ``data`` measure, the number of samples: no capacity exceeds it."""
    centred: bool | None = None
    """For the ``data`` measure, whether the activations were centred (the default: the
    affine span of what the samples make); ``None`` for the other measures."""
    findings: tuple[Finding, ...] = ()
    """Bottlenecks known by name (:mod:`onnx_flow.judge.findings`); they leave the flow
    verdict as it is."""
    fail_on: tuple[FindingKind, ...] = ()
    """Finding kinds that count for the exit code (``--fail-on``)."""
    ignored: tuple[FindingKind, ...] = ()
    """Finding kinds silenced (``--ignore``): none of them is in ``findings``."""
    energy: float | None = None
    """The energy fraction the ``rank`` and ``data`` caps hold (``--energy``); ``None``:
    the caps are numerical ranks."""
    spectra: tuple[LayerSpectrum, ...] = ()
    """For the ``rank`` and ``data`` measures, each measured map's or tensor's spectrum,
    in graph order."""
    whole_model: bool = False
    """The verdict's reference is the logits (``--whole-model``); else each head found is
    judged apart from its trunk."""
    profile: Profile | None = None
    """Widths along depth and the data flow, when a picture was asked for; not part of
    the JSON contract."""

    @property
    def heads(self) -> tuple[Head, ...]:
        """The heads judged apart, one per output that has one."""
        return tuple(output.head for output in self.outputs if output.head is not None)

    @property
    def failing(self) -> bool:
        """A bottleneck, or a finding of a kind in ``fail_on``: exit code 1."""
        return self.bottleneck or any(f.kind in self.fail_on for f in self.findings)

    @property
    def bottleneck(self) -> bool:
        """Whether any output's ratio is below the threshold."""
        return any(output.bottleneck for output in self.outputs)

    def bypassed_layers(self) -> tuple[BypassedLayer, ...]:
        """The ``layer`` tensors of :attr:`bypassed`, one row per module (a node without
        a module is a row of its own), in graph order: what every format lists."""
        groups: dict[str | tuple[None, str], list[Bypassed]] = {}
        for row in self.bypassed:
            if row.kind is TensorKind.LAYER:
                key = row.module if row.module is not None else (None, row.node or row.tensor)
                groups.setdefault(key, []).append(row)
        return tuple(map(_bypassed_layer, groups.values()))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the report (the report contract)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "measure": self.measure.value,
            "dims": dict(self.dims),
            "threshold": self.threshold,
            "inputs": [{"name": name, "width": width} for name, width in self.inputs],
            "max_flow": self.total.max_flow,
            "reference": self.total.reference,
            "ratio": self.total.ratio,
            "bottleneck": self.bottleneck,
            "joint": self.total.joint,
            "cut_near_inputs": [t.to_dict() for t in self.total.cut_near_inputs],
            "cut_near_outputs": [t.to_dict() for t in self.total.cut_near_outputs],
            "on_cut": self.total.on_cut_dicts(),
            "widened": self.total.widened_dict(),
            "whole_model": self.whole_model,
            "heads": [head.to_dict() for head in self.heads],
            "outputs": [output.to_dict() for output in self.outputs],
            "bypassed": [b.to_dict() for b in self.bypassed],
            "unknown": [u.to_dict() for u in self.unknown],
            "allow": list(self.allow),
            "unused": [u.to_dict() for u in self.unused],
            "given": [text for _, text in self.given],
            "samples": self.samples,
            "centred": self.centred,
            "energy": self.energy,
            "spectra": [s.to_dict() for s in self.spectra],
            "findings": [f.to_dict() for f in self.findings],
            "ignored": [kind.value for kind in self.ignored],
            "shape_fallbacks": [
                {"method": method, "tensors": tensors} for method, tensors in self.shape_fallbacks
            ],
            "branches": [b.to_dict() for b in self.branches],
            "dropped_output_shapes": [d.to_dict() for d in self.dropped_output_shapes],
        }


@dataclass(frozen=True, slots=True)
class Failure:
    """A model that could not be audited, among several."""

    model: str
    error: str
    """One line saying why."""

    @property
    def bottleneck(self) -> bool:
        """Not known: nothing to report."""
        return False

    @property
    def failing(self) -> bool:
        """Never: a model that was not audited makes the exit code 2, not 1."""
        return False

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the model and the reason."""
        return {"schema_version": SCHEMA_VERSION, "model": self.model, "error": self.error}


#: One entry of a run over several models.
Result = Report | Failure


@dataclass(frozen=True, slots=True)
class Change:
    """One output in the old and the new model (``None`` where it does not exist)."""

    name: str
    old: OutputResult | None
    new: OutputResult | None

    @property
    def regressed(self) -> bool:
        """A bottleneck the old version did not have, or a lower ratio than it had."""
        if self.new is None or not self.new.bottleneck:
            return False
        return self.old is None or not self.old.bottleneck or self.new.ratio < self.old.ratio


@dataclass(frozen=True, slots=True)
class SpectrumFall:
    """A measured map or tensor whose rank or energy rank is lower in the new version."""

    old: LayerSpectrum
    new: LayerSpectrum


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two versions of a model: their outputs matched by name, and what changed in the
    findings, the cuts, the skips and the spectra.

    Layers are named by their module, else by their node.
    """

    old: Report
    new: Report
    changes: tuple[Change, ...]
    """Outputs of the new version in its order, then outputs only the old one had."""
    findings_added: tuple[Finding, ...] = ()
    """Findings of the new version that the old lacked (matched by kind and layer)."""
    findings_removed: tuple[Finding, ...] = ()
    """Findings of the old version that the new lacks."""
    newly_on_cut: tuple[str, ...] = ()
    """Layers on a cut of a bottleneck of the new version and on no cut of the old."""
    no_longer_bypassed: tuple[str, ...] = ()
    """Layers the old version bypassed and the new one does not: the skip went, or the
    layer was widened, renamed or removed."""
    skips_lost: tuple[str, ...] = ()
    """Layers around which the new version lost a skip: attentions it newly finds
    without one (``attention_without_skip``), then layers of
    :attr:`no_longer_bypassed` that it shows limiting: on a cut of one of its
    bottlenecks. A layer that left the bypassed set because it was widened, renamed or
    removed is no skip lost."""
    spectra_fell: tuple[SpectrumFall, ...] = ()
    """Spectra (``rank`` and ``data`` measures) with a lower rank or energy rank."""

    @property
    def regressed_outputs(self) -> tuple[Change, ...]:
        """The outputs with a new bottleneck or a lower ratio."""
        return tuple(change for change in self.changes if change.regressed)

    @property
    def failing_findings(self) -> tuple[Finding, ...]:
        """Added findings that fail the new version: their kind is in its ``fail_on``,
        or they are an attention without a skip (a skip lost, whatever ``fail_on``)."""
        failing = {*self.new.fail_on, FindingKind.ATTENTION_WITHOUT_SKIP}
        return tuple(f for f in self.findings_added if f.kind in failing)

    @property
    def regressed(self) -> bool:
        """Whether some output regressed, or the new version adds a failing finding or
        loses a skip. A model against itself never regresses: nothing is added or lost."""
        return bool(self.regressed_outputs or self.failing_findings or self.skips_lost)


def format_shape(shape: Iterable[int | str | None]) -> str:
    """``[?, 3, height, 640]``: sizes, names, and ``?`` for a dim with neither."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _shape(shape: Shape) -> list[int | str | None] | None:
    return None if shape is None else list(shape)


def _bypassed_layer(rows: list[Bypassed]) -> BypassedLayer:
    """One module's row from its ``layer`` tensors (``rows``, in graph order)."""
    first, last = rows[0], rows[-1]
    return BypassedLayer(
        first.module or first.node or first.tensor,
        tuple(dict.fromkeys([row.op or "input" for row in rows])),
        tuple([row.tensor for row in rows]),
        first.reads or 0,
        last.width,
        min([row.bypass for row in rows]),
    )
