"""Read a graph's nodes into records: who reads and writes what, in topological order.

The records (:class:`~onnx_flow.records.Node`, :class:`~onnx_flow.records.Wiring`)
need the nodes alone, no shape: on a large graph they are read while shapes are
inferred in a child process.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterable, Iterator
from itertools import chain
from typing import NamedTuple

import onnx

from onnx_flow.errors import AuditError
from onnx_flow.records import (
    FUSED_ATTENTION,
    SHAPE_OPS,
    STANDARD_DOMAINS,
    SUBGRAPH_OPS,
    Node,
    Wiring,
    module_path,
    unnamed_label,
)

__all__ = [
    "Links",
    "attribute_graphs",
    "captured",
    "carrying_tensors",
    "check_text",
    "constant_tensor",
    "read",
    "subgraphs",
]

#: The dynamo exporter's metadata key for a node's module scopes.
_NAME_SCOPES = "pkg.torch.onnx.name_scopes"


def read(graph: onnx.GraphProto) -> Wiring:
    """The graph's nodes as records in topological order, the node that writes each
    tensor, and the tensors computed from the data inputs.

    Only outputs declared as tensors (or not declared) are outputs of the flow: a
    sequence or a map (a scikit-learn ``ZipMap``) has no fixed width, and is reported as
    unknown while the tensor outputs are audited.

    Raises:
        AuditError: a name is not UTF-8, a node reads a tensor nothing defines, the graph
            has a cycle, no output, an output nothing writes, or no output is a tensor.
    """
    constants = frozenset(t.name for t in graph.initializer)
    inputs = tuple(i.name for i in graph.input if i.name not in constants)
    # Weights name the layers that read them: initializers, and what Constant nodes write
    # (paddle2onnx stores its weights so), each before its readers in a sorted graph.
    weights = set(constants)
    records: list[Node] = []
    try:
        for index, node in enumerate(graph.node):
            records.append(record := _node(node, index, weights))
            if record.op_type == "Constant" and record.is_standard():
                weights.update(record.outputs)
    except TypeError:  # a bytes name met a str operation: find it and say so
        check_text(
            *zip(*((n.name, n.op_type, n.domain) for n in graph.node), strict=True),
            chain.from_iterable((*n.input, *n.output) for n in graph.node),
        )
        raise
    check_text(
        [r.name for r in records],
        [r.op_type for r in records],
        [r.domain for r in records],
        [r.scope or "" for r in records],
        chain.from_iterable(r.inputs for r in records),
        chain.from_iterable(r.outputs for r in records),
    )
    defined = _defined(graph, constants)
    nodes, producers = _topological(records, defined)
    outputs = _tensor_outputs(graph)
    if not graph.output:
        raise AuditError("the graph has no outputs: there is nothing to audit")
    for name in outputs:
        if name not in producers and name not in defined:
            raise AuditError(f"output {name!r} is written by no node and is no input")
    return Wiring(
        nodes=nodes,
        inputs=inputs,
        outputs=outputs,
        constants=constants,
        producers=producers,
        carrying=carrying_tensors(nodes, inputs),
    )


def _tensor_outputs(graph: onnx.GraphProto) -> tuple[str, ...]:
    """The graph outputs declared as tensors, or with no declared type."""
    outputs = tuple(
        o.name for o in graph.output if o.type.WhichOneof("value") in (None, "tensor_type")
    )
    if graph.output and not outputs:
        kinds = ", ".join(f"{o.name!r} ({o.type.WhichOneof('value')})" for o in graph.output)
        raise AuditError(f"the model has no tensor output to audit: {kinds}")
    return outputs


def carrying_tensors(nodes: Iterable[Node], inputs: Iterable[str]) -> dict[str, None]:
    """Tensors computed from a data input, in node order (a dict as an ordered set).

    What ``Shape`` and ``Size`` read is the input's shape, never its values: their
    outputs, and what is computed from them alone, carry no sample information.
    """
    carrying = dict.fromkeys(inputs)
    for node in nodes:
        if node.is_standard(SHAPE_OPS):
            continue
        for name in node.inputs:
            if name in carrying:
                for out in node.outputs:
                    if out:
                        carrying[out] = None
                break
    return carrying


def check_text(*groups: Iterable[str]) -> None:
    """Refuse names that are not UTF-8: protobuf hands those over as ``bytes``."""
    for group in groups:
        items = list(group)
        try:
            "".join(items)  # one pass in C; a bytes item raises
        except TypeError:
            bad = next(item for item in items if not isinstance(item, str))
            raise AuditError(f"the model holds a name that is not UTF-8: {bad!r}") from None


def _defined(graph: onnx.GraphProto, initializers: frozenset[str]) -> set[str]:
    """Tensors no node writes: graph inputs and initializers."""
    defined = {i.name for i in graph.input} | initializers
    defined.update(t.values.name for t in graph.sparse_initializer)
    return defined


def _topological(
    records: list[Node], defined: set[str]
) -> tuple[tuple[Node, ...], dict[str, Node]]:
    """Return the records in topological order (file order among ready nodes), and the
    node that writes each tensor.

    Args:
        records: the nodes in file order.
        defined: the tensors no node writes (:func:`_defined`).

    Raises:
        AuditError: a node reads a tensor nothing defines, or the graph has a cycle.
    """
    producers: dict[str, Node] = {}
    unseen: list[str] = []  # inputs no earlier node writes: graph inputs, or out of order
    for record in records:
        for name in record.inputs:
            if name not in producers:
                unseen.append(name)
        for name in record.outputs:
            if name:
                producers[name] = record
    # Set operations in C: the weights alone are 100,000s of unseen names.
    undefined = set(unseen).difference(defined, producers.keys())
    if undefined:
        name = next(name for name in unseen if name in undefined)
        reader = next(r for r in records if name in r.inputs)
        raise AuditError(
            f"node {reader.name!r} reads {name!r}, which no node, input or initializer defines"
        )
    if not producers.keys().isdisjoint(unseen):
        return tuple(_sorted(records)), producers
    return tuple(records), producers  # exporters write nodes in order: no sorting needed


def _sorted(records: list[Node]) -> list[Node]:
    """Kahn's algorithm with a heap, so that ready nodes keep their file order."""
    producers = {out: i for i, record in enumerate(records) for out in record.outputs if out}
    waiting = [0] * len(records)
    readers: dict[int, list[int]] = {}
    for i, record in enumerate(records):
        for name in set(record.inputs):
            producer = producers.get(name)
            if producer is not None:
                waiting[i] += 1
                readers.setdefault(producer, []).append(i)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    ordered: list[Node] = []
    while ready:
        i = heapq.heappop(ready)
        ordered.append(records[i])
        for reader in readers.get(i, ()):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, reader)
    if len(ordered) < len(records):
        stuck = next(records[i] for i, count in enumerate(waiting) if count)
        raise AuditError(f"the graph has a cycle through node {stuck.name!r}")
    return ordered


def _node(node: onnx.NodeProto, index: int, weights: Container[str]) -> Node:
    """The record of ``node``; ``weights``: the tensors whose names may name the layer
    that reads them."""
    # Each field read from a protobuf message costs; this runs once per node. A slice
    # copies a repeated field in one call: a third faster than iterating it.
    name, op_type, domain = node.name, node.op_type, node.domain
    own, outer = _reads(node, op_type, domain)
    inputs = own + outer
    # An If's branches read their layers' weights: the If is none of those layers.
    scope = name if "/" in name else _layered_weight(own, weights)
    if node.metadata_props:
        for prop in node.metadata_props:
            if prop.key == _NAME_SCOPES:
                scope = prop.value
    label = name or unnamed_label(op_type, index)
    if op_type in FUSED_ATTENTION:
        attributes = tuple((a.name, a.i) for a in node.attribute if a.type == a.INT)
        arguments = tuple(node.input)
        return Node(
            label, op_type, domain, inputs, tuple(node.output[:]), scope, attributes, arguments
        )
    return Node(label, op_type, domain, inputs, tuple(node.output[:]), scope)


def _reads(
    node: onnx.NodeProto, op_type: str, domain: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names a node reads, each once: its non-empty inputs, and the other outer
    names its subgraphs read."""
    inputs = tuple(node.input[:])
    if "" in inputs:
        inputs = tuple(n for n in inputs if n)
    if op_type in SUBGRAPH_OPS or domain not in STANDARD_DOMAINS:
        return inputs, tuple(n for n in dict.fromkeys(captured(node)) if n not in inputs)
    return inputs, ()


class Links(NamedTuple):
    """Who reads and writes what, by node index in file order, read off the protos once
    (folding and inferring again revisit a graph's nodes round after round)."""

    ops: list[str]
    """Each node's op type."""
    reads: list[tuple[str, ...]]
    """Each node's non-empty inputs and the outer names its subgraphs read."""
    writes: list[tuple[str, ...]]
    """Each node's outputs."""
    producer: dict[str, int]
    """Tensor -> the index of the node that writes it."""

    @classmethod
    def of(cls, graph: onnx.GraphProto) -> Links:
        """The links of ``graph``'s nodes."""
        ops: list[str] = []
        reads: list[tuple[str, ...]] = []
        writes: list[tuple[str, ...]] = []
        for node in graph.node:
            op_type = node.op_type
            ops.append(op_type)
            own, outer = _reads(node, op_type, node.domain)
            reads.append(own + outer)
            writes.append(tuple(node.output[:]))
        producer = {out: index for index, outs in enumerate(writes) for out in outs if out}
        return cls(ops, reads, writes, producer)


def constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The tensor of a ``Constant`` node that holds one (exporters write thousands;
    paddle2onnx stores its weights so)."""
    if node.op_type != "Constant" or node.domain not in STANDARD_DOMAINS or not node.output:
        return None
    if [a.name for a in node.attribute] != ["value"]:
        return None
    tensor: onnx.TensorProto = node.attribute[0].t
    return tensor


def _layered_weight(inputs: tuple[str, ...], weights: Container[str]) -> str | None:
    """The first weight among ``inputs`` whose name gives a layer (``linear_1.w_0``,
    ``encoder.0.weight``; see :func:`~onnx_flow.records.module_path`)."""
    return next((i for i in inputs if i in weights and module_path(i) is not None), None)


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    """The graphs a node holds in its attributes (an ``If``'s branches, a ``Loop``'s
    body), in attribute order."""
    for attribute in node.attribute:
        yield from attribute_graphs(attribute)


def attribute_graphs(attribute: onnx.AttributeProto) -> Iterator[onnx.GraphProto]:
    """The graphs an attribute holds: its graph, or its list of graphs."""
    if attribute.HasField("g"):
        yield attribute.g
    yield from attribute.graphs


def captured(node: onnx.NodeProto) -> list[str]:
    """Names a node's subgraphs read from the outer scope, in order of first use."""
    names: list[str] = []
    for subgraph in subgraphs(node):
        defined = {i.name for i in subgraph.input} | {t.name for t in subgraph.initializer}
        for inner in subgraph.node:
            for name in (*inner.input, *captured(inner)):
                if name and name not in defined and name not in names:
                    names.append(name)
            defined.update(inner.output)
    return names
