"""Bottlenecks known by name, read off the graph with no weights and no data.

- ``softmax_bottleneck`` (Yang et al., ICLR 2018): a linear map by a fixed weight from a
  last axis of width d to V logits with d + 1 < V: the log-probabilities have rank at
  most d + 1. Only where the graph says they are logits, by one of several kinds of
  evidence: they feed a Softmax, LogSoftmax, ArgMax or TopK; they are one of V values
  where the model reads ids one-hot from a vocabulary of V (a language model); or the
  map ends the model (a graph output, through a Softmax at most) and its output or its
  layer is named as class scores (``logits``, ``scores``, ``lm_head``, ``classifier``),
  or it reads globally pooled features and gives one score per class (``[N, V]``).
  An autoencoder's decoder, a regression head or a widening layer is no softmax.
- ``attention_head_rank`` (Bhojanapalli et al., ICML 2020): a Softmax over the last axis
  of a Q K^T MatMul whose head size d_h is below the key sequence length n: each head's
  n x n logits have rank at most d_h.
- ``attention_without_skip`` (Dong, Cordonnier and Loukas, ICML 2021): an attention with
  no path around it from its input to the outputs; ``depth`` counts such attentions in
  a row.

Attention is ``MatMul(Q, K^T)`` -> optional scaling and masking -> ``Softmax(-1)`` ->
``MatMul(., V)``, heads folded in by reshapes, as both PyTorch exporters write it, or one
fused op: ``com.microsoft`` Attention, MultiHeadAttention, GroupQueryAttention, or
opset 23's Attention. A
figure that stays symbolic is not guessed: the message names the ``--dim`` to bind.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

from onnx_flow.flow.paths import PathsToOutputs
from onnx_flow.records import FUSED_ATTENTION, SHAPE_OPS, Dim, Node, ShapedGraph
from onnx_flow.report import Finding, FindingKind

__all__ = ["find", "head_map"]

SOFTMAX = FindingKind.SOFTMAX_BOTTLENECK
HEAD_RANK = FindingKind.ATTENTION_HEAD_RANK
NO_SKIP = FindingKind.ATTENTION_WITHOUT_SKIP

#: Ops that say their input holds logits; all but Softmax take no part in attention.
_LOGIT_READERS = frozenset({"Softmax", "LogSoftmax", "ArgMax", "TopK"})
_SPECIAL = frozenset({*_LOGIT_READERS, *FUSED_ATTENTION})
# Ops between a linear map and its logits, or between Q K^T and the Softmax, that keep
# the last axis: bias, scale, mask, layout.
_KEEPING = frozenset(
    {
        *("Add", "Sub", "Mul", "Div", "Where", "Reshape", "Cast", "Identity", "Transpose"),
        *("Squeeze", "Unsqueeze"),
    }
)
#: Ops that turn logits into (log-)probabilities over the last axis: a model may end in one.
_NORMALISING = frozenset({"Softmax", "LogSoftmax"})
#: Ops through which a model's last linear map reaches its output.
_TO_OUTPUT = _KEEPING | _NORMALISING
#: Ops that pool a feature map (or a sequence) into one vector: a classifier's head reads them.
_POOLING = frozenset({"GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax"})
#: Ops between pooling and the head that only lay the pooled values out.
_LAYOUT = frozenset({"Flatten", "Reshape", "Squeeze", "Identity"})
#: Words of an output's name that say class scores (besides any ``logit``).
_SCORE_WORDS = frozenset({"scores", "score"})
#: The last part of a layer's path that says it gives class scores.
#: Not ``head`` or ``fc``: a regression head or an autoencoder's last layer has those.
_HEAD_LAYERS = frozenset({"lm_head", "classifier", "score", "logits", "cls"})
_SOFTMAX_OP = frozenset({"Softmax"})
_LINEAR = frozenset({"MatMul", "Gemm"})
_MATMUL = frozenset({"MatMul"})


def find(graph: ShapedGraph, vocabularies: Collection[int] = ()) -> tuple[Finding, ...]:
    """Every finding of the graph, in graph order within each kind; ``vocabularies``
    are the sizes V of the tables the model reads ids from one-hot."""
    special = [n for n in graph.nodes if n.op_type in _SPECIAL]  # one pass over the graph
    readers: dict[str, list[Node]] = {}
    if any(n.op_type == "Softmax" or n.op_type in FUSED_ATTENTION for n in special):
        for node in graph.nodes:  # only attention needs to follow tensors forward
            for name in node.inputs:
                readers.setdefault(name, []).append(node)
    attentions = list(_attentions(graph, special, readers))
    scores = {id(a.scores) for a in attentions}
    return (
        *_softmax(graph, special, scores, vocabularies),
        *(f for a in attentions if (f := _head_rank(graph, a)) is not None),
        *_without_skip(graph, attentions),
    )


@dataclass(frozen=True, slots=True)
class _Attention:
    scores: Node
    """The Q K^T MatMul (for a fused op: the op itself)."""
    softmax: Node
    """The Softmax (for a fused op: the op itself)."""
    mixed: Node
    """The MatMul of the probabilities with V (for a fused op: the op itself)."""

    @property
    def fused(self) -> bool:
        return self.scores is self.mixed


def _last(graph: ShapedGraph, name: str) -> Dim:
    shape = graph.shape(name)
    return shape[-1] if shape else None


def _softmax(
    graph: ShapedGraph, special: list[Node], scores: set[int], vocabularies: Collection[int]
) -> Iterator[Finding]:
    """Linear maps to logits: the inputs of ops that read logits, and the maps that end
    the model, followed back; each where the graph gives evidence of logits."""
    read = [n.inputs[0] for n in special if n.is_standard(_LOGIT_READERS) and n.inputs]
    ends = [(end, _linear_map(graph, end), True) for end in read]
    ends += [(output, head_map(graph, output), False) for output in graph.outputs]
    seen: set[str] = set()
    for end, linear, said in ends:
        if linear is None or linear.name in seen or id(linear) in scores:
            continue
        if all(i in graph.carrying for i in linear.inputs[:2]):
            continue  # both sides come from the data (Q K^T): no fixed d -> V map
        d, vocabulary = _last(graph, linear.inputs[0]), _last(graph, linear.outputs[0])
        if not isinstance(vocabulary, int) or vocabulary < 2:
            continue
        if not (said or vocabulary in vocabularies or _classifier(graph, linear, end)):
            continue
        seen.add(linear.name)
        if not isinstance(d, int):
            yield Finding(
                SOFTMAX,
                f"{_where(linear)} maps a last axis of unknown width to {vocabulary} logits:"
                f" bind its dim ({d!r}) with --dim to check for a softmax bottleneck",
                linear.name,
                linear.module,
                linear.outputs[0],
                {"d": None, "vocabulary": vocabulary, "ratio": None},
            )
        elif d + 1 < vocabulary:
            yield Finding(
                SOFTMAX,
                f"{_where(linear)} maps width {d} to {vocabulary} logits: the log-probabilities"
                f" have rank at most {d + 1} of {vocabulary} (ratio {(d + 1) / vocabulary:.4g})",
                linear.name,
                linear.module,
                linear.outputs[0],
                {"d": d, "vocabulary": vocabulary, "ratio": (d + 1) / vocabulary},
            )


def _classifier(graph: ShapedGraph, linear: Node, output: str) -> bool:
    """Whether the map that ends the model at ``output`` gives class scores: its output
    or its layer is named so (``logits``, ``class_scores``, ``lm_head``), or it reads
    globally pooled features and gives one score per class (``[N, V]``)."""
    if _named_scores(output):
        return True
    if linear.module and _layer_name(linear.module) in _HEAD_LAYERS:
        return True
    return len(graph.shape(output) or ()) == 2 and _pooled(graph, linear)


def _named_scores(name: str) -> bool:
    """Whether a tensor's name says it holds class scores (``logits``, ``lm_logits``,
    ``scores``, ``class_scores``)."""
    lowered = name.lower()
    return "logit" in lowered or not _SCORE_WORDS.isdisjoint(re.split(r"[^a-z0-9]+", lowered))


def _layer_name(module: str) -> str:
    """A layer path's last part: ``model.lm_head`` -> ``lm_head``."""
    return module.replace("/", ".").rpartition(".")[2].lower()


def _pooled(graph: ShapedGraph, linear: Node) -> bool:
    """Whether the map's data input is a pooled vector: global pooling, laid out flat."""
    name = next((i for i in linear.inputs[:2] if i in graph.carrying), None)
    for _ in range(4):
        node = graph.producers.get(name) if name else None
        if node is None or not node.is_standard():
            return False
        if node.op_type in _POOLING:
            return True
        if node.op_type not in _LAYOUT or not node.inputs:
            return False
        name = node.inputs[0]
    return False


def head_map(graph: ShapedGraph, output: str) -> Node | None:
    """The linear map that ends the model at ``output``, through last-axis-keeping ops
    and a Softmax at most (the candidate head, evidence aside)."""
    return _linear_map(graph, output, _TO_OUTPUT)


def _linear_map(graph: ShapedGraph, name: str, passing: frozenset[str] = _KEEPING) -> Node | None:
    """The nearest MatMul or Gemm whose output reaches ``name`` through a few ``passing``
    ops, over each input that carries samples (attention scores plus a mask computed
    from the data: the scores' MatMul is the nearer)."""
    frontier, seen = [name], {name}
    for _ in range(8):
        following: list[str] = []
        for tensor in frontier:
            node = graph.producers.get(tensor)
            if node is None or not node.is_standard():
                continue
            if node.op_type in _LINEAR:
                return node
            if node.op_type in passing:
                carried = [i for i in node.inputs if i in graph.carrying] or node.inputs[:1]
                following += [i for i in carried if i not in seen]
                seen.update(carried)
        frontier = following
    return None


def _attentions(
    graph: ShapedGraph, special: list[Node], readers: dict[str, list[Node]]
) -> Iterator[_Attention]:
    """Q K^T MatMul -> (scale, mask) -> Softmax over the last axis -> MatMul with V, and
    fused attention ops."""
    for softmax in special:
        if not softmax.is_standard(_SOFTMAX_OP) or not softmax.inputs:
            continue
        rank = len(graph.shape(softmax.inputs[0]) or ())
        if rank < 2:
            continue
        scores = _linear_map(graph, softmax.inputs[0])
        if scores is None or not all(i in graph.carrying for i in scores.inputs[:2]):
            continue  # Q and K both come from the data: not a layer's fixed weight
        mixed = _reader(readers, softmax.outputs[0], _MATMUL)
        if mixed is not None:
            yield _Attention(scores, softmax, mixed)
    for node in special:
        if node.op_type in FUSED_ATTENTION and node.arguments:
            yield _Attention(node, node, node)


def _reader(readers: dict[str, list[Node]], name: str, op: frozenset[str]) -> Node | None:
    """The first ``op`` that reads ``name``, through last-axis-keeping ops (readers of
    its shape alone do not count)."""
    for _ in range(8):
        following = [n for n in readers.get(name, []) if not n.is_standard(SHAPE_OPS)]
        hit = next((n for n in following if n.is_standard(op)), None)
        if hit is not None:
            return hit
        passing = [n for n in following if n.is_standard(_KEEPING)]
        if len(passing) != 1 or not passing[0].outputs:
            return None
        name = passing[0].outputs[0]
    return None


def _fused_figures(graph: ShapedGraph, node: Node) -> tuple[Dim, Dim, int]:
    """(head size, key sequence length, query heads) of a fused attention op."""
    attributes = dict(node.attributes)
    heads = attributes.get("num_heads") or attributes.get("q_num_heads") or 1
    query = graph.shape(node.arguments[0]) or ()
    key_name = node.arguments[1] if len(node.arguments) > 1 else ""
    key = (graph.shape(key_name) if key_name else None) or query
    if len(query) == 4:  # opset 23 Attention: [batch, heads, sequence, head size]
        return query[-1], key[-2] if len(key) == 4 else None, int(query[1] or heads)
    hidden = query[-1] if query else None
    if node.op_type == "Attention" and node.domain == "com.microsoft":
        # Packed input [batch, sequence, hidden], projected inside: hidden is the weight's.
        weights = graph.shape(node.arguments[1]) if len(node.arguments) > 1 else None
        hidden = weights[-1] // 3 if weights and isinstance(weights[-1], int) else None
        key = query
    head = hidden // heads if isinstance(hidden, int) else None
    sequence = key[1] if len(key) >= 2 else None
    return head, sequence, heads


def _head_rank(graph: ShapedGraph, attention: _Attention) -> Finding | None:
    if attention.fused:
        head, sequence, heads = _fused_figures(graph, attention.scores)
    else:
        query, logits = attention.scores.inputs[0], attention.scores.outputs[0]
        head, sequence = _last(graph, query), _last(graph, logits)
        shape = graph.shape(logits) or ()
        heads = shape[-3] if len(shape) >= 3 and isinstance(shape[-3], int) else 1
    node = attention.softmax
    if not isinstance(head, int) or not isinstance(sequence, int):
        unknown = sequence if not isinstance(sequence, int) else head
        return Finding(
            HEAD_RANK,
            f"{_where(node)}: head size or sequence length is symbolic ({unknown!r}):"
            " bind it with --dim to check the attention's rank",
            node.name,
            node.module,
            node.outputs[0],
            {
                "head_size": head if isinstance(head, int) else None,
                "sequence": None,
                "heads": heads,
            },
        )
    if head >= sequence:
        return None
    return Finding(
        HEAD_RANK,
        f"{_where(node)}: head size {head} is below the sequence length {sequence}: each"
        f" of the {heads} heads' {sequence} x {sequence} attention logits has rank at most {head}",
        node.name,
        node.module,
        node.outputs[0],
        {"head_size": head, "sequence": sequence, "heads": heads},
    )


def _without_skip(graph: ShapedGraph, attentions: list[_Attention]) -> Iterator[Finding]:
    """Attentions that every path from their input to the outputs goes through."""
    if not attentions:
        return
    paths = PathsToOutputs(graph)
    depth: dict[str, int] = {}  # attention output -> how many skipless attentions in a row
    for attention in attentions:
        blocked = attention.mixed.outputs[0]
        starts = attention.scores.inputs[:1] if attention.fused else attention.scores.inputs[:2]
        if any(paths.around(t, blocked) for t in _upstream(graph, starts)):
            continue  # a residual (or another path) goes around it
        # A search per attention without a residual: linear in the graph each, which only
        # a model made of such attentions pays in full.
        ancestors = _ancestors(graph, starts)
        before = [d for out, d in depth.items() if out in ancestors]
        depth[blocked] = 1 + max(before, default=0)
        node = attention.softmax
        yield Finding(
            NO_SKIP,
            f"{_where(node)}: no path goes around this attention from its input to the"
            f" outputs (no residual); {depth[blocked]} such attention(s) in a row",
            node.name,
            node.module,
            blocked,
            {"depth": depth[blocked]},
        )


#: How far back from Q and K the attention's input is looked for: projections, norms,
#: rotary embeddings and head reshapes take a few dozen ops in both exporters' output.
_REACH_BACK = 64


def _upstream(graph: ShapedGraph, starts: Sequence[str]) -> list[str]:
    """Carrying tensors that Q and K are computed from, nearest first, a few ops back."""
    found: list[str] = []
    queue = list(starts)
    while queue and len(found) < _REACH_BACK:
        name = queue.pop(0)
        if name in found or name not in graph.carrying:
            continue
        found.append(name)
        producer = graph.producers.get(name)
        if producer is not None:
            queue += [i for i in producer.inputs if i in graph.carrying]
    return found


def _ancestors(graph: ShapedGraph, ends: Sequence[str]) -> set[str]:
    """Carrying tensors with a path to one of ``ends``."""
    found: set[str] = set()
    stack = list(ends)
    while stack:
        name = stack.pop()
        if name in found or name not in graph.carrying:
            continue
        found.add(name)
        producer = graph.producers.get(name)
        if producer is not None:
            stack += producer.inputs
    return found


def _where(node: Node) -> str:
    return node.module or node.name
