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
  of a Q K^T MatMul whose head size d_h is below both the number of queries q and of
  keys k: each head's q x k logits have rank at most d_h < min(q, k). Cross-attention
  with 4 queries over 1,500 keys has no such finding: its logits have rank at most 4
  whatever the head size.
- ``attention_without_skip`` (Dong, Cordonnier and Loukas, ICML 2021): an attention with
  no path around it from its input to the outputs; ``depth`` counts such attentions in
  a row.

The two attention findings are reported once per module pattern: layers whose module
paths differ only in their numbers (``encoder.layer.3.attention.self`` and
``encoder.layer.7.attention.self``: ``encoder.layer.*.attention.self``) with the same
head-rank figures are one finding that lists them; layers without a skip are one
finding per pattern whatever their depths, with the greatest ``depth``.

Attention is ``MatMul(Q, K^T)`` -> optional scaling and masking -> ``Softmax(-1)`` ->
``MatMul(., V)``, heads folded in by reshapes, as both PyTorch exporters write it, or one
fused op: ``com.microsoft`` Attention, MultiHeadAttention, GroupQueryAttention, or
opset 23's Attention. A
figure that stays symbolic is not guessed: the message names the ``--dim`` to bind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from onnx_flow.flow.paths import PathsToOutputs
from onnx_flow.records import FUSED_ATTENTION, SHAPE_OPS, Dim, Node, ShapedGraph
from onnx_flow.report import Finding, FindingKind, FindingLayer

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
    """Every finding of the graph, in graph order within each kind (the attention
    findings once per module pattern); ``vocabularies`` are the sizes V of the tables
    the model reads ids from one-hot."""
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
        *_head_rank_per_pattern(f for a in attentions if (f := _head_rank(graph, a))),
        *_without_skip_per_pattern(_without_skip(graph, attentions)),
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


class _Found(NamedTuple):
    """A finding in one attention, before those of layers alike are merged."""

    node: Node
    tensor: str
    figures: dict[str, Any]
    what: str
    """What the message says after the layer's name."""


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


def _fused_figures(graph: ShapedGraph, node: Node) -> tuple[Dim, Dim, Dim, int]:
    """(head size, queries, keys, query heads) of a fused attention op, from the shapes
    of its query, key and past key inputs."""
    attributes = dict(node.attributes)
    heads = attributes.get("num_heads") or attributes.get("q_num_heads") or 1

    def shape(position: int) -> tuple[Dim, ...]:
        name = node.arguments[position] if len(node.arguments) > position else ""
        return (graph.shape(name) if name else None) or ()

    query, key = shape(0), shape(1)
    if node.op_type == "Attention" and node.domain == "com.microsoft":
        # Self-attention on [batch, sequence, input hidden], projected inside by weights
        # [input hidden, 3 x hidden] (its second input); past [2, batch, heads, past
        # sequence, head size].
        head = _divided(_divided(key[-1] if key else None, 3), heads)
        queries = _axis(query, 1)
        return head, queries, _plus(queries, _axis(shape(4), 3, 5)), heads
    if len(query) == 4:  # opset 23 Attention: [batch, heads, sequence, head size]
        head, queries = query[3], query[2]
        heads = query[1] if isinstance(query[1], int) else heads
    elif len(query) == 5:  # MultiHeadAttention, Q K V packed: [batch, sequence, heads, 3, head]
        head, queries = query[4], query[1]
    else:  # [batch, sequence, hidden]
        parts = heads
        if not key and node.op_type == "GroupQueryAttention":  # Q K V packed in hidden
            parts += 2 * attributes.get("kv_num_heads", heads)
        head, queries = _divided(query[-1] if query else None, parts), _axis(query, 1)
    if len(key) == 4:  # [batch, key heads, sequence, head size]
        new = key[2]
    elif len(key) in (3, 5):  # [batch, sequence, hidden], or K V packed [.., heads, 2, head]
        new = key[1]
    else:  # packed with the query
        new = queries
    # Past keys come before the new ones: [batch, key heads, past sequence, head size].
    past = shape({"Attention": 4, "MultiHeadAttention": 6}.get(node.op_type, 3))
    return head, queries, _plus(new, _axis(past, 2, 4)), heads


def _axis(shape: tuple[Dim, ...], axis: int, rank: int | None = None) -> Dim:
    """``shape[axis]``; ``None`` if the shape is shorter, or not of ``rank``."""
    if len(shape) <= axis or (rank is not None and len(shape) != rank):
        return None
    return shape[axis]


def _divided(size: Dim, parts: int) -> Dim:
    """``size // parts`` for a known size, else ``None``."""
    return size // parts if isinstance(size, int) else None


def _plus(keys: Dim, past: Dim) -> Dim:
    """The new keys and the past ones: their sum if both are known, the new ones if no
    past is given (or its length is unknown: ``None``), else the one that is symbolic."""
    if past is None:
        return keys
    if isinstance(keys, int) and isinstance(past, int):
        return keys + past
    return keys if not isinstance(keys, int) else past


#: What each figure of :func:`_head_rank` is called when it stays symbolic.
_SIZES = {"keys": "number of keys", "queries": "number of queries", "head_size": "head size"}


def _head_rank(graph: ShapedGraph, attention: _Attention) -> _Found | None:
    """The finding in the attention's logits, if its head size is below both its
    queries and its keys, or a size that decides it is symbolic."""
    if attention.fused:
        head, queries, keys, heads = _fused_figures(graph, attention.scores)
    else:
        query, logits = attention.scores.inputs[0], attention.scores.outputs[0]
        shape = graph.shape(logits) or ()
        head = _last(graph, query)
        queries, keys = (shape[-2], shape[-1]) if len(shape) >= 2 else (None, None)
        heads = shape[-3] if len(shape) >= 3 and isinstance(shape[-3], int) else 1
    if isinstance(head, int) and any(isinstance(n, int) and n <= head for n in (queries, keys)):
        return None  # rank <= min(queries, keys) whatever the head size
    node = attention.softmax
    sizes = {"head_size": head, "queries": queries, "keys": keys}
    figures = {name: size if isinstance(size, int) else None for name, size in sizes.items()}
    symbolic = [name for name in _SIZES if not isinstance(sizes[name], int)]
    if symbolic:
        what = (
            f"the {_SIZES[symbolic[0]]} is symbolic ({sizes[symbolic[0]]!r}): bind it with"
            " --dim to check the attention's rank"
        )
    else:
        each = "the head's logits have" if heads == 1 else f"each of the {heads} heads' logits has"
        what = f"head size {head} is below {queries} queries x {keys} keys: {each} rank"
        what += f" at most {head}"
    return _Found(node, node.outputs[0], {**figures, "heads": heads}, what)


def _head_rank_per_pattern(found: Iterable[_Found]) -> Iterator[Finding]:
    """One finding per module pattern and figures."""
    for group in _alike(found, lambda f: (tuple(f.figures.items()), f.what)):
        yield _finding(HEAD_RANK, group, group[0].figures, group[0].what)


def _without_skip(graph: ShapedGraph, attentions: list[_Attention]) -> Iterator[_Found]:
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
        figures = {"depth": depth[blocked]}
        yield _Found(attention.softmax, blocked, figures, _no_skip(depth[blocked], 1))


def _without_skip_per_pattern(found: Iterable[_Found]) -> Iterator[Finding]:
    """One finding per module pattern, with the greatest depth of its layers."""
    for group in _alike(found, lambda f: ()):
        deepest = max(f.figures["depth"] for f in group)
        yield _finding(NO_SKIP, group, {"depth": deepest}, _no_skip(deepest, len(group)))


def _no_skip(depth: int, layers: int) -> str:
    """What an attention without a skip, or ``layers`` of them, means."""
    if layers == 1:
        return (
            "no path goes around this attention from its input to the outputs (no residual);"
            f" {depth} such attention(s) in a row"
        )
    return (
        "no path goes around these attentions from their inputs to the outputs (no"
        f" residual); up to {depth} such attention(s) in a row"
    )


#: A number between separators of a module path (``.``, and ``/`` in tf2onnx's scopes).
_NUMBER = re.compile(r"(?<![^./])[0-9]+(?![^./])")


def _pattern(module: str) -> str:
    """The module path with its numbers as ``*``: ``encoder.layer.*.attention.self``."""
    return _NUMBER.sub("*", module)


def _alike(found: Iterable[_Found], key: Callable[[_Found], Hashable]) -> list[list[_Found]]:
    """The findings grouped by module pattern and ``key``, each group where its first
    finding is; a finding whose node has no module stays alone."""
    groups: dict[Hashable, list[_Found]] = {}
    for index, f in enumerate(found):
        module = f.node.module
        groups.setdefault((_pattern(module), key(f)) if module else index, []).append(f)
    return list(groups.values())


def _finding(kind: FindingKind, group: list[_Found], figures: dict[str, Any], what: str) -> Finding:
    """The finding of one layer, or of several alike: then the first one's node and
    tensor, the pattern of their modules, and every layer listed."""
    first = group[0]
    if len(group) == 1:
        node = first.node
        message = f"{_where(node)}: {what}"
        return Finding(kind, message, node.name, node.module, first.tensor, figures)
    pattern = _pattern(first.node.module or "")
    return Finding(
        kind,
        f"{len(group)} layers ({pattern}): {what}",
        first.node.name,
        pattern,
        first.tensor,
        figures,
        tuple(FindingLayer(f.node.name, f.node.module, f.tensor) for f in group),
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
