"""Judge the flows: references, ratios, the layers on the cuts, what skips go around."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from onnx_flow.errors import AuditError
from onnx_flow.flow.cut import Flow, solve
from onnx_flow.flow.reduce import Prepared
from onnx_flow.judge import kinds
from onnx_flow.measure.widths import Widths
from onnx_flow.records import Node, ShapedGraph
from onnx_flow.report import (
    Bypassed,
    CutTensor,
    Finding,
    FindingKind,
    Head,
    Measure,
    OutputResult,
    Report,
    TensorKind,
    Unknown,
    Widened,
)

__all__ = ["judge"]

#: The name of the all-outputs result in a model with several outputs.
ALL_OUTPUTS = "*"


def judge(
    graph: ShapedGraph,
    widths: Widths,
    prepared: Prepared,
    *,
    model: str,
    measure: Measure,
    threshold: float,
    allow: tuple[str, ...] = (),
    fail_on: tuple[FindingKind, ...] = (),
    found: tuple[Finding, ...] = (),
    heads: Mapping[str, Head] | None = None,
    ignore: tuple[FindingKind, ...] = (),
) -> Report:
    """Solve the flow to each output and to all of them, and build the report, without
    the findings of the kinds in ``ignore``.

    ``prepared`` is the flow network, prepared (:func:`~onnx_flow.flow.reduce.prepare`)
    for the output sets solved here, ending at the ``heads``' inputs, and weighed.
    ``found`` are the model's findings; ``heads`` the heads judged apart, by output
    (``None``: the whole model is judged, the logits its reference).

    Raises:
        AuditError: a data input or an output has no known width.
    """
    for name in graph.inputs:
        if name in widths.unknown:
            raise AuditError(f"width of {name!r} is unknown ({widths.unknown[name]})")
    for name in graph.outputs:
        if name in widths.unknown:
            raise AuditError(
                f"width of {name!r} is unknown ({widths.unknown[name]}){_undecided(graph)}"
            )
    judged = _Judge(graph, widths, prepared, threshold, heads or {})
    outputs = tuple(judged.output(name) for name in graph.outputs)
    if len(outputs) == 1:
        total, flow = outputs[0], judged.flows[graph.outputs[0]]
    else:
        flow = solve(prepared, outputs=graph.outputs)
        total = judged.result(ALL_OUTPUTS, flow, graph.outputs, joint=True)
    split = [name for name in prepared.network.outputs if name not in graph.outputs]
    outputs += tuple(judged.output(name, declared=True) for name in split)
    return Report(
        model=model,
        measure=measure,
        dims=tuple(sorted(graph.dims.items())),
        threshold=threshold,
        total=total,
        outputs=outputs,
        bypassed=tuple(judged.bypassed(flow)),
        unknown=tuple(
            Unknown(name, reason, _origin(graph.producers.get(name))[0])
            for name, reason in widths.unknown.items()
        ),
        inputs=tuple((name, widths.known[name]) for name in graph.inputs),
        shape_fallbacks=graph.fallbacks,
        branches=graph.branches,
        dropped_output_shapes=graph.dropped_output_shapes,
        allow=allow,
        samples=widths.samples,
        centred=widths.centred,
        energy=widths.energy,
        spectra=widths.spectra,
        findings=tuple(f for f in found if f.kind not in ignore),
        fail_on=fail_on,
        whole_model=heads is None,
        ignored=ignore,
    )


class _Judge:
    """Shared look-ups for building results of one model."""

    def __init__(
        self,
        graph: ShapedGraph,
        widths: Widths,
        prepared: Prepared,
        threshold: float,
        heads: Mapping[str, Head],
    ) -> None:
        self.graph = graph
        self.widths = widths
        self.prepared = prepared
        self.threshold = threshold
        self.heads = heads
        self.flows: dict[str, Flow] = {}

    def output(self, name: str, *, declared: bool = False) -> OutputResult:
        flow = solve(self.prepared, outputs=[name])
        self.flows[name] = flow
        return self.result(name, flow, [name], declared=declared)

    def result(
        self,
        name: str,
        flow: Flow,
        outputs: Sequence[str],
        *,
        declared: bool = False,
        joint: bool = False,
    ) -> OutputResult:
        # An output delivers all its values, however few directions its last layer spans;
        # a trunk judged apart delivers its head's input.
        uncapped, known = self.widths.uncapped, self.widths.known
        ends = dict.fromkeys(h.tensor if (h := self.heads.get(o)) else o for o in outputs)
        delivered = sum(uncapped.get(end) or known.get(end, 0) for end in ends)
        index, capacity = self.prepared.network.index, self.prepared.network.capacity
        given = sum(capacity[index[i]] or 0 for i in flow.inputs)
        result = OutputResult(
            name=name,
            max_flow=flow.value,
            reference=min(given, delivered),
            threshold=self.threshold,
            cut_near_inputs=tuple(self.cut_tensor(t) for t in flow.near_inputs),
            cut_near_outputs=tuple(self.cut_tensor(t) for t in flow.near_outputs),
            declared=declared,
            head=self.heads.get(name),
            joint=joint,
        )
        if not result.bottleneck:
            # Nothing to change: a deep residual stack has a minimum cut at every layer,
            # and the joint flow of several outputs is no verdict (each output's is).
            return result
        lifted = flow.widened(self.prepared.network)
        return dataclasses.replace(
            result,
            on_cut=tuple(self.cut_tensor(t) for t in flow.on_cut),
            widened=None
            if lifted is None
            else Widened(lifted[0], tuple(map(self.cut_tensor, lifted[1]))),
        )

    def cut_tensor(self, tensor: str) -> CutTensor:
        """A cut tensor's record; a split's input is reported as the tensor it stands for."""
        tensor = self.prepared.network.split_inputs.get(tensor, tensor)
        producer = self.graph.producers.get(tensor)
        widest = self.widest_read(producer)
        return CutTensor(
            tensor,
            self.widths.known[tensor],
            self.graph.types[tensor].shape,
            *_origin(producer),
            reads=None if widest is None else self.widths.known[widest],
            reads_shape=None if widest is None else self.graph.shape(widest),
        )

    def widest_read(self, node: Node | None) -> str | None:
        """The widest sample-carrying tensor of known width ``node`` reads: what the layer
        maps from; ``None`` for a graph input's producer (none)."""
        if node is None:
            return None
        known = self.widths.known
        return max((i for i in node.inputs if i in known), key=known.__getitem__, default=None)

    def bypassed(self, flow: Flow) -> list[Bypassed]:
        """Tensors narrower than the flow (width < F) that other paths go around.

        A tensor lies on some minimum cut exactly when removing it lowers the flow by its
        width; one that loses less, and leaves some flow, is bypassed, if it is so in
        the flow to each output it carries to: a narrow layer on the only path to one
        output is that output's cut, however much reaches the others. A tensor as wide
        as the flow is not narrow, however much wider the outputs are (GPT-2's
        12,288-wide hidden states beside its 16 x 50257 logits).
        """
        on_cut = {*flow.near_inputs, *flow.near_outputs}
        tensors = flow.tensors()
        narrow = [
            (tensor, width)
            for tensor, width in zip(tensors, map(self.widths.known.get, tensors), strict=True)
            if width is not None and width < flow.value and tensor not in on_cut
        ]
        outputs = list(self.flows.values()) if len(self.flows) > 1 else []
        own = [(f, set(f.tensors())) for f in outputs]
        found = []
        for tensor, width in narrow:
            without = flow.without(tensor)
            if not _around(flow, without, width):
                continue
            if any(tensor in c and not _around(f, f.without(tensor), width) for f, c in own):
                continue
            found.append((tensor, width, without))
        return self.described(found)

    def described(self, found: list[tuple[str, int, int]]) -> list[Bypassed]:
        """The records of bypassed (tensor, width, bypass): producer, kind and, for a
        layer, the width of what its producer maps from."""
        if not found:
            return []
        kind_of = kinds.kinds(self.graph, (tensor for tensor, _, _ in found))
        producers, known = self.graph.producers, self.widths.known
        records = []
        for tensor, width, without in found:
            producer = producers.get(tensor)
            kind = kind_of.get(tensor, TensorKind.OTHER)
            read = self.widest_read(producer) if kind is TensorKind.LAYER else None
            reads = None if read is None else known[read]
            records.append(Bypassed(tensor, width, *_origin(producer), without, kind, reads))
        return records


def _around(flow: Flow, without: int, width: int) -> bool:
    """Whether ``flow`` loses less than ``width`` when a tensor that narrow carries
    nothing (leaving ``without``), and keeps some."""
    return without > flow.value - width and without > 0


def _undecided(graph: ShapedGraph) -> str:
    """A hint when ``If`` nodes that input values would decide were kept whole."""
    inputs = dict.fromkeys(i for b in graph.branches if b.taken is None for i in b.inputs)
    if not inputs:
        return ""
    flags = " ".join(f"--input-value {name}=..." for name in inputs)
    return f"; an If reads {', '.join(inputs)}: choose its branch with {flags}"


def _origin(node: Node | None) -> tuple[str | None, str | None, str | None]:
    """The producing node's name, op and layer path; all ``None`` for a graph input."""
    return (node.name, node.op_type, node.module) if node else (None, None, None)
