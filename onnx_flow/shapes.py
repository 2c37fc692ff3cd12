"""Bind symbolic dims, infer every tensor's shape, and hand on plain records.

ONNX shape inference (with data propagation) is not guaranteed complete: a tensor it
leaves without a shape, or with a dim it could not resolve, keeps that gap here
(``None`` dims, or the name of a symbol it made up) for ``widths`` to report.
The records this module returns are all that later stages see of the model.
"""

from __future__ import annotations

import ast
import heapq
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import NamedTuple

import onnx

from onnx_flow import fallback, inference, symbols
from onnx_flow.errors import AuditError
from onnx_flow.fold import fold_constants
from onnx_flow.inference import ELEMENT_TYPES, SHAPE_OPS, SUBGRAPH_OPS, TensorType

__all__ = [
    "Node",
    "ShapedGraph",
    "Wiring",
    "FUSED_ATTENTION",
    "carrying_tensors",
    "infer",
    "module_path",
]

#: Rounds of "fold what is constant, infer again"; each resolves one more layer of
#: shape arithmetic, and exporters nest it only a few deep.
_FOLD_ROUNDS = 8

#: The most input elements the onnxruntime run feeds (1 GiB of float32).
_RUN_ELEMENTS = 2**28


class Node(NamedTuple):
    """One operator, its tensors named in graph order.

    A named tuple: a large graph has 100,000s of them, and a tuple is made in a third
    of the time of a frozen dataclass.
    """

    name: str
    """The node's name, or ``<op_type #index>`` when the model leaves it empty."""
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    """Input tensors, including values its subgraphs capture from the outer scope."""
    outputs: tuple[str, ...]
    scope: str | None
    """Where the framework says the node comes from: the dynamo exporter's
    ``name_scopes`` metadata, or a TorchScript-style ``/a/b/Op`` node name."""
    attributes: tuple[tuple[str, int], ...] = ()
    """Integer attributes, kept for fused attention ops only (``num_heads``...)."""
    arguments: tuple[str, ...] = ()
    """Inputs by position, empty ones included, for fused attention ops only."""

    @property
    def module(self) -> str | None:
        """The framework layer that produced it (``enc.2``), ``None`` when unknown."""
        return module_path(self.scope)


class Wiring(NamedTuple):
    """What a graph's nodes tell before any shape is known: who reads and writes what."""

    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    carrying: Mapping[str, None]


@dataclass(frozen=True, slots=True)
class ShapedGraph:
    """The model's graph as plain records, nodes in topological order."""

    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    """Data inputs: graph inputs that are not initializers."""
    outputs: tuple[str, ...]
    constants: frozenset[str]
    """Initializers: tensors fixed by the model, carrying no sample information."""
    types: Mapping[str, TensorType]
    dims: Mapping[str, int]
    """Symbolic dims bound before inference (the batch dim and ``--dim`` values)."""
    declared_dims: frozenset[str]
    """Symbolic dims the model declares on its inputs and outputs (bindable by the user)."""
    producers: Mapping[str, Node]
    """Tensor -> the node that writes it (an index over ``nodes``)."""
    carrying: Mapping[str, None]
    """Tensors computed from a data input, in node order (see :func:`carrying_tensors`)."""
    fallbacks: tuple[tuple[str, int], ...] = ()
    """Fallbacks that resolved shapes ONNX inference left open: (method, tensors)."""

    @property
    def wiring(self) -> Wiring:
        """Its nodes and tensors, as the flow network is wired from them."""
        return Wiring(self.nodes, self.inputs, self.outputs, self.carrying)


def infer(
    model: onnx.ModelProto,
    *,
    dims: Mapping[str, int] | None = None,
    batch_dim: str | None = None,
    stored: Callable[[], tuple[onnx.ModelProto, Path | None]] | None = None,
    check: Callable[[], object] | None = None,
    beside: Callable[[Wiring], object] | None = None,
) -> ShapedGraph:
    """Bind symbolic dims in ``model`` (in place), infer shapes and return the records.

    Where ONNX inference leaves shapes open, :mod:`onnx_flow.fallback` tries
    onnxruntime's symbolic inference, then one onnxruntime run (which needs ``stored``).

    Args:
        model: a model from :func:`onnx_flow.load.load`, which the pipeline owns.
        dims: sizes for named symbolic dims (``--dim seq=128``).
        batch_dim: the dim to bind to 1; by default the symbolic dim on axis 0 of the
            data inputs. A value for it in ``dims`` wins.
        stored: gives the model with its weights (as stored: inline data kept, external
            data in the returned folder) for the onnxruntime run; ``None``: no run.
        check: a check of the model that runs beside inference, before anything may
            read a weight (the external-data check); it must only read the model.
        beside: work to run here while shapes are inferred, given the nodes as first
            read (the flow network's wiring); it must not change the model. Folding
            constants may read other nodes: compare ``nodes``.

    Raises:
        AuditError: a dim named in ``dims`` or ``batch_dim`` is not in the model, the model
            has no data inputs, its graph has a cycle, or shape inference rejects it.
    """
    graph = model.graph
    constants = frozenset(t.name for t in graph.initializer)
    inputs = tuple(i.name for i in graph.input if i.name not in constants)
    if not inputs:
        raise AuditError("the model has no data inputs: every graph input is an initializer")
    values = (*graph.input, *graph.output)
    _check_text(
        [v.name for v in values],
        [d.dim_param for v in values for d in v.type.tensor_type.shape.dim],
        constants,
    )
    declared = symbols.declared(graph)
    bindings = symbols.bindings(graph, inputs, declared, dict(dims or {}), batch_dim)
    symbols.bind(_value_infos(graph), bindings)
    # Reading the nodes is Python work as long as inference: on a large graph the two
    # run side by side (see onnx_flow.inference).
    outputs = tuple(o.name for o in graph.output)
    with inference.inferring(model, check=check) as inferred:
        nodes, producers, carrying = _read_nodes(graph, constants, inputs)
        if beside is not None:
            beside(Wiring(nodes, inputs, outputs, carrying))
        types = inferred()
    resolved = _resolved(producers, types)
    for _ in range(_FOLD_ROUNDS):
        if resolved or not fold_constants(model, types):
            break
        # Folded nodes became initializers: read the graph again.
        initializers = frozenset(t.name for t in graph.initializer)
        nodes, producers, carrying = _read_nodes(graph, initializers, inputs)
        types = inference.infer_types(model)
        resolved = _resolved(producers, types)
    fallbacks = () if resolved else _fall_back(model, carrying, types, inputs, stored)
    return ShapedGraph(
        nodes=nodes,
        inputs=inputs,
        outputs=outputs,
        constants=constants,
        types=types,
        dims=bindings,
        declared_dims=declared,
        producers=producers,
        carrying=carrying,
        fallbacks=fallbacks,
    )


def _fall_back(
    model: onnx.ModelProto,
    carrying: Mapping[str, None],
    types: dict[str, TensorType],
    inputs: tuple[str, ...],
    stored: Callable[[], tuple[onnx.ModelProto, Path | None]] | None,
) -> tuple[tuple[str, int], ...]:
    """Resolve open shapes with onnxruntime, in place in ``types``; say what was used."""
    open_ = _open(carrying, types)
    used: list[tuple[str, int]] = []
    if open_:
        found = _static(fallback.symbolic(model, open_))
        types.update(found)
        open_ -= found.keys()
        if found:
            used.append((fallback.SYMBOLIC, len(found)))
    if open_ and stored is not None:
        feeds: dict[str, tuple[int, tuple[int, ...]]] = {}
        for name in inputs:
            tensor = types.get(name)
            if tensor is None or not tensor.dtype or tensor.static is None:
                return tuple(used)  # a run needs every input's shape and type
            feeds[name] = (ELEMENT_TYPES[tensor.dtype], tensor.static)
        if sum(math.prod(shape) for _, shape in feeds.values()) > _RUN_ELEMENTS:
            return tuple(used)  # synthetic inputs that large are a broken model, not a run
        weighted, folder = stored()
        found = _static(fallback.run(weighted, folder, feeds, open_))
        types.update(found)
        if found:
            used.append((fallback.RUN, len(found)))
    return tuple(used)


def carrying_tensors(nodes: Iterable[Node], inputs: Iterable[str]) -> dict[str, None]:
    """Tensors computed from a data input, in node order (a dict as an ordered set).

    What ``Shape`` and ``Size`` read is the input's shape, never its values: their
    outputs, and what is computed from them alone, carry no sample information.
    """
    carrying = dict.fromkeys(inputs)
    for node in nodes:
        if node.op_type in SHAPE_OPS and node.domain in ("", "ai.onnx"):
            continue
        for name in node.inputs:
            if name in carrying:
                for out in node.outputs:
                    if out:
                        carrying[out] = None
                break
    return carrying


def _open(carrying: Mapping[str, None], types: Mapping[str, TensorType]) -> set[str]:
    """Tensors carrying sample information whose shape is not fully known (tensors only).

    The rest never needs a width, nor a fallback that loads the weights to find one.
    """
    types_open = {
        key
        for key, tensor in inference.distinct(types.values()).items()
        if tensor.kind == "tensor" and tensor.static is None
    }
    untyped = carrying.keys() - types.keys()
    if not types_open:
        return untyped
    return untyped | {name for name in carrying if id(types.get(name)) in types_open}


def _static(shapes: fallback.Shapes) -> dict[str, TensorType]:
    """The fully known shapes among fallback results, as types."""
    found = {name: inference.tensor_type(elem, dims) for name, (elem, dims) in shapes.items()}
    return {name: t for name, t in found.items() if t.dtype and t.static is not None}


def _resolved(producers: Mapping[str, Node], types: Mapping[str, TensorType]) -> bool:
    """Whether every tensor a node writes has a type, and every type a static shape
    (then no tensor is open, and nothing is left to fall back for)."""
    return producers.keys() <= types.keys() and all(
        t.static is not None for t in inference.distinct(types.values()).values()
    )


def _value_infos(graph: onnx.GraphProto) -> Iterator[onnx.ValueInfoProto]:
    yield from graph.input
    yield from graph.output
    yield from graph.value_info


def _records(graph: onnx.GraphProto) -> list[Node]:
    return [_node(node, index) for index, node in enumerate(graph.node)]


def _read_nodes(
    graph: onnx.GraphProto, initializers: frozenset[str], inputs: tuple[str, ...]
) -> tuple[tuple[Node, ...], dict[str, Node], dict[str, None]]:
    """The nodes as records in topological order, the node that writes each tensor, and
    the tensors computed from the data ``inputs`` (``initializers``: the names of the
    graph's initializers)."""
    records = _records(graph)
    _check_text(
        [r.name for r in records],
        [r.op_type for r in records],
        [r.domain for r in records],
        [r.scope or "" for r in records],
        chain.from_iterable(r.inputs for r in records),
        chain.from_iterable(r.outputs for r in records),
    )
    nodes, producers = _topological(records, _defined(graph, initializers))
    return nodes, producers, carrying_tensors(nodes, inputs)


def _check_text(*groups: Iterable[str]) -> None:
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


def _node(node: onnx.NodeProto, index: int) -> Node:
    # Each field read from a protobuf message costs; this runs once per node. A slice
    # copies a repeated field in one call: a third faster than iterating it.
    name, op_type, domain = node.name, node.op_type, node.domain
    inputs = tuple(node.input[:])
    if "" in inputs:
        inputs = tuple(n for n in inputs if n)
    if op_type in SUBGRAPH_OPS or (domain and domain != "ai.onnx"):
        inputs += tuple(n for n in dict.fromkeys(_captured(node)) if n not in inputs)
    scope = name if name[:1] == "/" else None
    if node.metadata_props:
        for prop in node.metadata_props:
            if prop.key == _NAME_SCOPES:
                scope = prop.value
    label = name or f"<{op_type} #{index}>"
    if op_type in FUSED_ATTENTION:
        attributes = tuple((a.name, a.i) for a in node.attribute if a.type == a.INT)
        arguments = tuple(node.input)
        return Node(
            label, op_type, domain, inputs, tuple(node.output[:]), scope, attributes, arguments
        )
    return Node(label, op_type, domain, inputs, tuple(node.output[:]), scope)


#: Attention in one op: onnxruntime's contrib ops and opset 23's Attention.
FUSED_ATTENTION = frozenset({"Attention", "MultiHeadAttention", "GroupQueryAttention"})


def _captured(node: onnx.NodeProto) -> list[str]:
    """Names a node's subgraphs read from the outer scope, in order of first use."""
    names: list[str] = []
    for attribute in node.attribute:
        for subgraph in (*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs):
            defined = {i.name for i in subgraph.input} | {t.name for t in subgraph.initializer}
            for inner in subgraph.node:
                for name in (*inner.input, *_captured(inner)):
                    if name and name not in defined and name not in names:
                        names.append(name)
                defined.update(inner.output)
    return names


_NAME_SCOPES = "pkg.torch.onnx.name_scopes"


def module_path(scope: str | None) -> str | None:
    """The framework layer path from a node's scope (see :attr:`Node.scope`).

    The dynamo exporter records ``['', 'enc', 'enc.2', 'linear_1']``: the last scope
    names the op itself, the one before its layer. TorchScript names nodes
    ``/model/transformer/h.0/ln_1/LayerNormalization``: one scope per module, by
    attribute name, except that a numbered child of a container repeats the
    container's scope (``/enc/enc.2/Gemm`` is ``enc.2``, not ``enc.enc.2``).
    """
    if scope is None:
        return None
    if scope.startswith("["):
        # A Python list literal of names: split it (literal_eval costs 20x more) unless
        # a name holds a quote or a comma.
        scopes: object = scope[2:-2].split("', '") if scope.endswith("']") else None
        if not isinstance(scopes, list) or any("'" in s or "," in s for s in scopes):
            try:
                scopes = ast.literal_eval(scope)
            except (ValueError, SyntaxError):
                return None
        layers = [s for s in scopes[:-1] if s] if isinstance(scopes, list) else []
        return str(layers[-1]) if layers else None
    path: list[str] = []
    for part in scope.split("/")[1:-1]:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        elif part:
            path.append(part)
    return ".".join(path) or None
