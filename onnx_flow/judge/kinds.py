"""What each tensor that carries samples is: a learned layer's output, or plumbing.

A skip going around a narrow tensor says something only where the tensor is a learned
branch (a U-Net's inner level, an adapter's squeeze); around a norm's statistics, a
gate or a mask it is how the model is built. Two passes over the nodes decide.

Forward, in graph order, from the op and the kinds of the sample-carrying tensors it
reads (a tensor that carries no samples, a weight or a shape, takes no part):

- ``layer``: the output of a learned transform (MatMul, Gemm, Conv, ConvTranspose, their
  integer and quantised forms, LSTM, GRU, RNN) reading a weight (an input that carries no
  samples), and what follows it within the same module: a Linear's bias Add, a fused
  activation. What another module makes of it is ``other`` (an activation module after
  a Linear, a residual Add).
- ``attention_logits``: a MatMul or Einsum of two tensors that carry samples (Q K^T),
  and what follows it (scale, mask, Softmax); the product of those with V is ``other``.
- ``statistic``: a reduction (``Reduce*``, global pools, a LayerNormalization's mean
  and inverse deviation) and what follows it: LayerNorm and RMSNorm statistics (ReduceMean
  of x and of x^2, Sqrt, Reciprocal), ``F.normalize`` norms.
- ``mask``: a comparison's or logical op's result, a Where whose condition alone
  carries samples, an integer input cast to floats, and what follows them.
- ``random``: RandomNormalLike, RandomUniformLike, Bernoulli, Multinomial, and what
  follows from them alone.
- ``input``: the model's data inputs, and what follows from them alone.

Any other op passes its inputs' kind on. Where it reads several kinds, the first of
``other``, ``attention_logits``, ``input``, ``random``, ``statistic``, ``gate``,
``quantisation``, ``mask`` names its output: masks, norms and noise modify the tensor
they are applied to, they do not replace it. A ``layer`` read by a node of another
module counts as ``other``.

Backward, in reverse graph order, from what reads a tensor (this overrides the forward
kind): a tensor every reader of which uses it as a gate is a ``gate``, one every reader
of which uses it as a scale or zero point is ``quantisation``:

- ``gate``: a Sigmoid or HardSigmoid output that every reader multiplies into a wider
  tensor (squeeze-excite, attention gates), and every tensor read only to compute
  gates (squeeze-excite's pooled statistic and its two convolutions).
- ``quantisation``: inputs 1 and 2 (scale, zero point) of QuantizeLinear and
  DequantizeLinear, DynamicQuantizeLinear's outputs 1 and 2, and every tensor read only
  to compute them.

A data input of the graph is ``input`` whatever reads it; a graph output is never a gate
or a quantisation parameter. Cost: each node and each of its inputs is visited once in
each direction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from onnx_flow.records import Node, ShapedGraph, TensorType
from onnx_flow.report import TensorKind

__all__ = ["kinds"]

_LAYER = TensorKind.LAYER
_LOGITS = TensorKind.ATTENTION_LOGITS
_STATISTIC = TensorKind.STATISTIC
_MASK = TensorKind.MASK
_RANDOM = TensorKind.RANDOM
_INPUT = TensorKind.INPUT
_GATE = TensorKind.GATE
_QUANTISATION = TensorKind.QUANTISATION
_OTHER = TensorKind.OTHER

#: Learned transforms: what they write is a layer when they read a weight.
_LEARNED = frozenset(
    {
        *("MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum", "MatMulInteger"),
        *("ConvInteger", "QLinearMatMul", "QLinearConv", "FusedMatMul", "FusedConv"),
        *("FusedGemm", "MatMulNBits", "LSTM", "GRU", "RNN"),
    }
)
_REDUCTIONS = frozenset(
    {
        *("ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2"),
        *("ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMin", "ReduceProd"),
        *("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"),
    }
)
#: Ops whose first output is the normalised tensor and whose others are its statistics.
_NORMS = frozenset({"LayerNormalization", "SimplifiedLayerNormalization"})
_COMPARISONS = frozenset(
    {
        *("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Not", "And"),
        *("Or", "Xor", "IsNaN", "IsInf"),
    }
)
_RANDOM_OPS = frozenset({"RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial"})
_GATES = frozenset({"Sigmoid", "HardSigmoid"})
#: Ops whose inputs 1 and 2 are a scale and a zero point.
_QUANTISERS = frozenset({"QuantizeLinear", "DequantizeLinear"})
#: The kind a node's output takes from mixed inputs: the first present.
_PRECEDENCE = (_OTHER, _LOGITS, _INPUT, _RANDOM, _STATISTIC, _GATE, _QUANTISATION, _MASK)


def kinds(graph: ShapedGraph) -> dict[str, TensorKind]:
    """The kind of every tensor that carries samples (see the module's rules)."""
    forward, reads, used_as = _forward(graph)
    sunk = _backward(graph, reads, used_as)
    found = {**forward, **sunk}
    found.update(dict.fromkeys(graph.inputs, _INPUT))
    return found


def _forward(
    graph: ShapedGraph,
) -> tuple[dict[str, TensorKind], Counter[str], dict[TensorKind, Counter[str]]]:
    """The forward kinds; how often each tensor is read; how often as a gate or a
    quantisation parameter."""
    carrying, producers, types = graph.carrying, graph.producers, graph.types
    found: dict[str, TensorKind] = dict.fromkeys(graph.inputs, _INPUT)
    reads: Counter[str] = Counter()
    used_as = {_GATE: Counter[str](), _QUANTISATION: Counter[str]()}
    for node in graph.nodes:
        reads.update(node.inputs)
        op = node.op_type
        if op in _QUANTISERS:
            used_as[_QUANTISATION].update(node.inputs[1:3])
        elif op == "Mul" and len(node.inputs) == 2:
            used_as[_GATE].update(_gates(node.inputs, producers, types))
        if not node.outputs or node.outputs[0] not in carrying:
            continue
        carried = [(i, found.get(i, _OTHER)) for i in node.inputs if i in carrying]
        kind = _kind(node, carried, len(carried) < len(node.inputs), producers, types)
        found[node.outputs[0]] = kind
        if len(node.outputs) > 1:
            rest = (
                _STATISTIC
                if op in _NORMS
                else _QUANTISATION
                if op == "DynamicQuantizeLinear"
                else kind
            )
            found.update(dict.fromkeys(node.outputs[1:], rest))
    return found, reads, used_as


def _kind(
    node: Node,
    carried: Sequence[tuple[str, TensorKind]],
    weighted: bool,
    producers: Mapping[str, Node],
    types: Mapping[str, TensorType],
) -> TensorKind:
    """The kind of ``node``'s first output, from the kinds of the sample-carrying
    tensors it reads; ``weighted``: it reads a tensor that carries none."""
    op = node.op_type
    if op in _LEARNED:
        if weighted:
            return _LAYER
        return _OTHER if any(kind is _LOGITS for _, kind in carried) else _LOGITS
    if op in _REDUCTIONS:
        return _STATISTIC
    if op in _COMPARISONS:
        return _MASK
    if op in _RANDOM_OPS:
        return _RANDOM
    if op == "Where":
        values = [(i, k) for i, k in carried if i != node.inputs[0]]
        if not values:
            return _MASK
        carried = values
    present = {kind for _, kind in carried}
    if op == "Cast" and present == {_INPUT} and not _integer(node.outputs[0], types):
        return _MASK
    if _LAYER in present:
        module = node.module
        if module is not None and any(
            kind is _LAYER and producers[i].module == module for i, kind in carried
        ):
            return _LAYER
        present = (present - {_LAYER}) | {_OTHER}
    return next((kind for kind in _PRECEDENCE if kind in present), _OTHER)


def _integer(tensor: str, types: Mapping[str, TensorType]) -> bool:
    """Whether ``tensor``'s elements are integers (or its type is unknown)."""
    tensor_type = types.get(tensor)
    return tensor_type is None or tensor_type.integer


def _gates(
    inputs: Sequence[str], producers: Mapping[str, Node], types: Mapping[str, TensorType]
) -> list[str]:
    """The operands of a Mul that are Sigmoid outputs multiplied into a wider tensor."""
    found = []
    for this, other in ((inputs[0], inputs[1]), (inputs[1], inputs[0])):
        producer = producers.get(this)
        if producer is not None and producer.op_type in _GATES:
            narrow, wide = (_elements(t, types) for t in (this, other))
            if narrow is not None and wide is not None and narrow < wide:
                found.append(this)
    return found


def _elements(tensor: str, types: Mapping[str, TensorType]) -> int | None:
    tensor_type = types.get(tensor)
    return None if tensor_type is None else tensor_type.elements


def _backward(
    graph: ShapedGraph, reads: Counter[str], used_as: dict[TensorKind, Counter[str]]
) -> dict[str, TensorKind]:
    """The tensors every reader of which uses as a gate or a quantisation parameter."""
    outputs = set(graph.outputs)
    sunk: dict[str, TensorKind] = {}
    for node in reversed(graph.nodes):
        used = [o for o in node.outputs if reads[o] and o not in outputs]
        if not used or any(o in outputs for o in node.outputs):
            continue
        for kind, counts in used_as.items():
            if all(counts[o] == reads[o] for o in used):
                sunk.update(dict.fromkeys(used, kind))
                counts.update(node.inputs)
                break
    return sunk
