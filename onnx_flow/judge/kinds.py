"""What each tensor that carries samples is: a learned layer's output, or plumbing.

A skip going around a narrow tensor says something only where the tensor is a learned
branch (a U-Net's inner level, an adapter's squeeze); around a norm's statistics, a
gate or a mask it is how the model is built. Two passes over the nodes decide.

Forward, from the op and the kinds of the sample-carrying tensors it
reads (a tensor that carries no samples, a weight or a shape, takes no part):

- ``layer``: the output of a learned transform (MatMul, Gemm, Conv, ConvTranspose, their
  integer and quantised forms, LSTM, GRU, RNN) reading a weight (an input that carries no
  samples), and what follows it within the same (known) module: a Linear's bias Add, a
  fused activation. What another module makes of it is ``other`` (an activation module
  after a Linear, a residual Add).
- ``attention_logits``: a MatMul or Einsum of two tensors that carry samples (Q K^T),
  and what follows it (scale, mask, Softmax); the product of those with V is ``other``.
- ``statistic``: a reduction (``Reduce*``, global pools, a LayerNormalization's mean
  and inverse deviation) and what follows it: LayerNorm and RMSNorm statistics (ReduceMean
  of x and of x^2, Sqrt, Reciprocal), ``F.normalize`` norms.
- ``mask``: a comparison's or logical op's result, a Where whose condition alone
  carries samples, an input cast to floats, and what follows them.
- ``random``: RandomNormalLike, RandomUniformLike, Bernoulli, Multinomial, and what
  follows from them alone.
- ``input``: the model's data inputs, and what follows from them alone.

Any other op passes its inputs' kind on. Where it reads several kinds, the first of
``other``, ``attention_logits``, ``input``, ``random``, ``statistic``, ``gate``,
``quantisation``, ``mask`` names its output: masks, norms and noise modify the tensor
they are applied to, they do not replace it. A ``layer`` read by a node of another
module counts as ``other``.

Backward, from what reads a tensor (this overrides the forward
kind): a tensor every reader of which uses it as a gate is a ``gate``, one every reader
of which uses it as a scale or zero point is ``quantisation``, one every reader of which
uses it to compute attention logits is ``attention_logits``:

- ``gate``: a Sigmoid or HardSigmoid output that every reader multiplies into a wider
  tensor (squeeze-excite, attention gates), and every tensor read only to compute
  gates (squeeze-excite's pooled statistic and its two convolutions).
- ``quantisation``: inputs 1 and 2 (scale, zero point) of QuantizeLinear and
  DequantizeLinear, DynamicQuantizeLinear's outputs 1 and 2, and every tensor read only
  to compute them.
- ``attention_logits``: the two operands of Q K^T (the queries and keys, after their
  scale, rotary embedding and head split), and every tensor read only to compute them:
  a query or key projection, whose width the ``attention_head_rank`` finding judges.
  They decide where each position looks, not what it reads: with grouped-query
  attention the key and value projections are both narrower than the residual stream,
  and the value projection alone is the squeezed branch.

A data input of the graph is ``input`` whatever reads it; a graph output is never a gate
or a quantisation parameter. A Shape or Size node reads no values: it counts as no
reader.

Cost: kinds are followed back from the tensors asked about, and from each product of
two tensors that carry samples, only as far as they need (a learned op, a reduction or
a comparison decides alone), each node once. The backward pass costs one look at each
node's op; where the graph has gates, (de)quantisers or attention, one count of every
node's inputs, then only the nodes that compute gates, scales, queries and keys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from onnx_flow.records import SHAPE_OPS, Node, ShapedGraph, TensorType
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
#: Ops whose output's kind follows from the op alone.
_BY_OP = _REDUCTIONS | _COMPARISONS | _RANDOM_OPS
#: The kind a node's output takes from mixed inputs: the first present.
_PRECEDENCE = (_OTHER, _LOGITS, _INPUT, _RANDOM, _STATISTIC, _GATE, _QUANTISATION, _MASK)


def kinds(graph: ShapedGraph, tensors: Iterable[str]) -> dict[str, TensorKind]:
    """The kind of each of ``tensors`` (tensors that carry samples; see the module's
    rules), with the kinds of the tensors it took to decide them."""
    products = _products(graph)
    found = _forward(graph, [*tensors, *(node.outputs[0] for node in products)])
    logits = [node for node in products if found[node.outputs[0]] is _LOGITS]
    found.update(_backward(graph, logits))
    found.update(dict.fromkeys(graph.inputs, _INPUT))
    return found


def _forward(graph: ShapedGraph, tensors: Iterable[str]) -> dict[str, TensorKind]:
    """The forward kinds of ``tensors``, following back only as far as each needs:
    a learned op, a reduction or a comparison decides without its inputs' kinds."""
    carrying, producers, types = graph.carrying, graph.producers, graph.types
    found: dict[str, TensorKind] = dict.fromkeys(graph.inputs, _INPUT)
    for tensor in tensors:
        if tensor in found:
            continue
        stack = [tensor]
        while stack:
            name = stack[-1]
            node = producers.get(name)
            if node is None or name in found:
                found.setdefault(stack.pop(), _OTHER)
                continue
            carried = [i for i in node.inputs if i in carrying]
            weighted = len(carried) < len(node.inputs)
            if weighted and node.op_type in _LEARNED:  # a layer, whatever it reads
                stack.pop()
                found.update(dict.fromkeys(node.outputs, _LAYER))
                continue
            pending = [i for i in carried if i not in found]
            if pending and node.op_type not in _BY_OP:
                stack += pending
                continue
            stack.pop()
            pairs = [(i, found.get(i, _OTHER)) for i in carried]
            kind = _kind(node, pairs, weighted, producers, types)
            found.update(dict.fromkeys(node.outputs, kind))
            if node.op_type in _NORMS:
                found.update(dict.fromkeys(node.outputs[1:], _STATISTIC))
            elif node.op_type == "DynamicQuantizeLinear":
                found.update(dict.fromkeys(node.outputs[1:], _QUANTISATION))
    return found


def _products(graph: ShapedGraph) -> list[Node]:
    """The learned ops that read two tensors that carry samples and no weight: Q K^T, or
    the product of attention weights with V."""
    carrying = graph.carrying
    return [
        node
        for node in graph.nodes
        if node.op_type in _LEARNED
        and len(node.inputs) == 2
        and node.inputs[0] in carrying
        and node.inputs[1] in carrying
        and node.outputs
    ]


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


def _backward(graph: ShapedGraph, logits: Sequence[Node]) -> dict[str, TensorKind]:
    """The tensors every reader of which uses as a gate, as a quantisation parameter,
    or to compute attention logits: from each Mul by a gate, each (de)quantiser and
    each of ``logits`` (the Q K^T products) back, as far as that holds."""
    seeds = _seeds(graph)
    for product in logits:
        seeds[_LOGITS].update(product.inputs)
    if not any(seeds.values()):
        return {}
    # A Shape or Size reads a tensor's shape, never its values: it is no reader here.
    reads = Counter(
        i for node in graph.nodes if not node.is_standard(SHAPE_OPS) for i in node.inputs
    )
    outputs, carrying = set(graph.outputs), graph.carrying
    stack = [(t, k) for k, counts in seeds.items() for t in counts if counts[t] == reads[t]]
    sunk: dict[str, TensorKind] = {}
    while stack:
        tensor, kind = stack.pop()
        if tensor in sunk or tensor in outputs:
            continue
        sunk[tensor] = kind
        node = graph.producers.get(tensor)
        if node is None or any(
            o in outputs or (reads[o] and sunk.get(o) is not kind) for o in node.outputs
        ):
            continue  # read otherwise, or not all of it is sunk yet
        counts = seeds[kind]
        for name in node.inputs:
            counts[name] += 1
            if counts[name] == reads[name] and name in carrying:
                stack.append((name, kind))
    return sunk


def _seeds(graph: ShapedGraph) -> dict[TensorKind, Counter[str]]:
    """How often each tensor is read as a gate (a Sigmoid output multiplied into a wider
    tensor) and as a scale or zero point."""
    producers, types = graph.producers, graph.types
    seeds = {_GATE: Counter[str](), _QUANTISATION: Counter[str](), _LOGITS: Counter[str]()}
    for node in graph.nodes:
        if node.op_type in _QUANTISERS:
            seeds[_QUANTISATION].update(node.inputs[1:3])
        elif node.op_type == "Mul" and len(node.inputs) == 2:
            seeds[_GATE].update(_gates(node.inputs, producers, types))
    return seeds
