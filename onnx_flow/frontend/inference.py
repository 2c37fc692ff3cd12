"""ONNX shape inference, read into one type record per tensor.

onnx's C++ inference holds the GIL for its whole run, and reading a large graph into
records (:mod:`onnx_flow.frontend.nodes`) is Python work of about the same length: a
graph of :data:`FORK_NODES` nodes or more is worth inferring in a child process
(:func:`onnx_flow.processes.child.beside`) while the caller reads it. The child runs
:func:`onnx_flow.frontend.shapes.infer` (:func:`value_types`, folding, and again); the
initializers' types (:func:`constant_types`) are read by the caller meanwhile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import onnx
import onnx.defs
import onnx.shape_inference

from onnx_flow.errors import AuditError, first_line
from onnx_flow.frontend.dtypes import BITS, ELEMENT_TYPES, INTEGER_TYPES, TYPE_NAMES
from onnx_flow.frontend.fold import KnownValues
from onnx_flow.frontend.nodes import Links, subgraphs
from onnx_flow.records import (
    SHAPE_OPS,
    SUBGRAPH_OPS,
    Dim,
    TensorType,
    ValueKind,
    distinct,
)

__all__ = [
    "FORK_NODES",
    "LENIENT",
    "STALE_VALUE_INFO",
    "WITHOUT_PROPAGATION",
    "Inferred",
    "OpenPart",
    "constant_types",
    "contradicts",
    "open_part",
    "tensor_type",
    "value_types",
]

#: Graphs this large infer in a child process. Measured on the bench's residual MLP
#: (the audit in process, imports aside): 0.28 s instead of 0.38 s at 20,000 nodes,
#: 0.14 s instead of 0.19 s at 10,000, 0.09 s instead of 0.10 s at 5,000; at 2,000 the
#: fork and the types' transfer cost what the overlap saves.
FORK_NODES = 5_000


def tensor_type(elem_type: int, shape: tuple[Dim, ...] | None) -> TensorType:
    """The record of a tensor of ONNX element type number ``elem_type``."""
    # An element type newer than this onnx (or a corrupt one) keeps its number.
    name = TYPE_NAMES.get(elem_type, f"element type {elem_type}") if elem_type else ""
    return TensorType(
        shape=shape, dtype=name, bits=BITS.get(elem_type), integer=elem_type in INTEGER_TYPES
    )


#: How shapes were inferred when strict inference of the model as written failed (the
#: report's ``shape_fallbacks``, with the number of tensors).
STALE_VALUE_INFO = (
    "inference again without the exporter's value_info, which contradicted the bound shapes"
)
LENIENT = "inference past ops that have no inference function ({})"
WITHOUT_PROPAGATION = "inference without data propagation, which fails in the subgraphs"


class Inferred(NamedTuple):
    """Every tensor's type after inference, and how it was inferred."""

    types: dict[str, TensorType]
    """Tensor -> type; tensors of the same type share one record."""
    notes: tuple[tuple[str, int], ...] = ()
    """What strict inference of the model as written needed: (method, tensors)."""

    def including(self, types: dict[str, TensorType]) -> Inferred:
        """These results with more types (the initializers')."""
        return Inferred({**types, **self.types}, self.notes)


def constant_types(initializers: Iterable[onnx.TensorProto]) -> dict[str, TensorType]:
    """The types of ``initializers``, read off them."""
    types: dict[str, TensorType] = {}
    by_dims: dict[tuple[int, tuple[int, ...]], TensorType] = {}
    for tensor in initializers:
        key = (tensor.data_type, tuple(tensor.dims[:]))  # a slice: one call, not an iteration
        record = by_dims.get(key)
        if record is None:
            record = by_dims[key] = tensor_type(*key)
        types[tensor.name] = record
    return types


def value_types(model: onnx.ModelProto) -> Inferred:
    """The types of the graph's inputs, outputs and values, after strict inference.

    Where strict inference rejects the model as written, four causes are not the
    model's fault, and each is taken away in turn: onnx's data propagation, which fails
    inside ``If`` branches that share value names, an exporter's ``value_info`` recorded for
    other input sizes (dropped from ``model`` and its subgraphs, such as the branches of
    a merged decoder's ``If``, in place, and inferred again), output shapes declared
    that the graph does not compute (set aside while inferred again; the report names
    them, :func:`contradicts`), and ops that have no inference function (the
    ``ai.onnx.ml`` Scaler, custom ops: inferred past, their outputs left to the
    onnxruntime fallbacks). Anything else, such as a contradiction with the inputs' own
    dims or between two inputs, is refused.

    Raises:
        AuditError: shape inference rejects the model; the message is strict
            inference's first.
    """
    # Data propagation carries values computed from shapes; without a Shape or Size op
    # (nor a subgraph that may hold one) there are none, constant Reshape targets are
    # read anyway, and it costs 25% more.
    ops = {(node.domain, node.op_type) for node in model.graph.node}
    data_prop = any(op in SHAPE_OPS | SUBGRAPH_OPS for _, op in ops)
    try:
        return Inferred(_inferred(model, strict=True, data_prop=data_prop))
    except AuditError as error:
        refused = error
    if data_prop and any(op in SUBGRAPH_OPS for _, op in ops):
        # onnx's data propagation fails on If branches that share value names (optimum's
        # merged decoders): folding the shape arithmetic does its work instead.
        try:
            types = _inferred(model, strict=True, data_prop=False)
            return Inferred(types, ((WITHOUT_PROPAGATION, len(types)),))
        except AuditError:
            pass
    notes: list[tuple[str, int]] = []
    dropped = _drop_value_info(model.graph)
    if dropped:
        notes.append((STALE_VALUE_INFO, dropped))
        try:
            return Inferred(_inferred(model, strict=True, data_prop=data_prop), tuple(notes))
        except AuditError:
            pass
    declared = _output_shapes(model.graph)
    if declared:
        try:
            types = _outputs_inferred(model, declared, data_prop=data_prop)
            return Inferred(types, tuple(notes))
        except AuditError:
            pass
    lacking = sorted(op for domain, op in ops if not _has_inference(model, domain, op))
    if not lacking:
        raise refused
    types = _inferred(model, strict=False, data_prop=data_prop)
    notes.append((LENIENT.format(", ".join(lacking)), len(types)))
    return Inferred(types, tuple(notes))


class OpenPart(NamedTuple):
    """The part of a model inference left open (:func:`open_part`)."""

    model: onnx.ModelProto
    """The part as a model of its own."""
    nodes: list[int]
    """The indices of its nodes in the whole graph, in file order."""


def open_part(
    model: onnx.ModelProto, links: Links, types: Mapping[str, TensorType], known: KnownValues
) -> OpenPart | None:
    """The part of ``model`` whose types inference left open, as a model of its own to
    infer again, or ``None`` when none is open.

    Its nodes are those with an output of no static shape that were not folded, with
    the shape computations they read: the producers, again and again, of their inputs
    of rank 0 or 1 (or of no tensor type) whose values are not known. Its initializers
    are the known values and the weights it reads; every other tensor it reads is an
    input of the static type inferred before. Inferring this part gives its tensors the
    types a whole inference of the folded model would, at the cost of the part.
    """
    # Tensors of one type share one record: classify the records, not the tensors.
    ranks = {key: _static_rank(record) for key, record in distinct(types.values()).items()}

    def rank(name: str) -> int | None:
        """The rank of ``name``'s static shape; ``None`` when not static (or unknown)."""
        record = types.get(name)
        return None if record is None else ranks[id(record)]

    names = known.names
    pending = [
        index
        for index, outs in enumerate(links.writes)
        if any(out and out not in names and rank(out) is None for out in outs)
    ]
    if not pending:
        return None
    chosen: set[int] = set()
    while pending:
        index = pending.pop()
        if index in chosen:
            continue
        chosen.add(index)
        for name in links.reads[index]:
            if name in links.producer and name not in names and (rank(name) or 0) <= 1:
                pending.append(links.producer[name])
    order = sorted(chosen)
    written = {out for index in order for out in links.writes[index]}
    read = dict.fromkeys(
        name for index in order for name in links.reads[index] if name not in written
    )
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    graph_inputs = {value.name: value for value in graph.input}
    inputs, weights = [], []
    for name in read:
        if name in initializers:
            weights.append(initializers[name])
        elif name in names:
            weights.append(known.tensor(name))
        elif name in graph_inputs:
            inputs.append(graph_inputs[name])
        elif name in links.producer:  # a tensor of static shape, rank 2 or more
            record = types[name]
            inputs.append(
                onnx.helper.make_tensor_value_info(name, ELEMENT_TYPES[record.dtype], record.static)
            )
    part = onnx.helper.make_graph(
        [graph.node[index] for index in order],
        graph.name,
        inputs,
        [value for value in graph.output if value.name in written],
        initializer=weights,
    )
    return OpenPart(_model_like(model, part), order)


def _static_rank(record: TensorType) -> int | None:
    """The rank of a static tensor type that can be written as an input; else ``None``
    (the tensor is then inferred again with its producer)."""
    static = (
        record.static if record.kind is ValueKind.TENSOR and record.dtype in ELEMENT_TYPES else None
    )
    return None if static is None else len(static)


def _model_like(model: onnx.ModelProto, graph: onnx.GraphProto) -> onnx.ModelProto:
    """A model of ``graph`` with ``model``'s versions and functions."""
    other = onnx.ModelProto(ir_version=model.ir_version, graph=graph)
    other.opset_import.extend(model.opset_import)
    other.functions.extend(model.functions)
    return other


def _inferred(model: onnx.ModelProto, *, strict: bool, data_prop: bool) -> dict[str, TensorType]:
    """One run of onnx's inference, read into records.

    Strict: a conflict (an Add of widths 3 and 5, from --dim values that do not fit the
    model or from a broken model) is an error, not a shape quietly kept.
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=strict, data_prop=data_prop)
    except Exception as error:  # onnx raises InferenceError, ValueError or RuntimeError
        raise AuditError(f"shape inference failed: {first_line(error)}") from None
    types: dict[str, TensorType] = {}
    by_proto: dict[bytes, TensorType] = {}
    graph = inferred.graph
    for values in (graph.input, graph.output, graph.value_info):
        for value in values:
            proto = value.type.SerializeToString()
            if proto not in by_proto:
                by_proto[proto] = _value_type(value.type)
            types[value.name] = by_proto[proto]
    return types


def _output_shapes(graph: onnx.GraphProto) -> dict[str, tuple[Dim, ...]]:
    """The shapes the graph's outputs declare, by output."""
    shapes = {value.name: _value_type(value.type).shape for value in graph.output}
    return {name: shape for name, shape in shapes.items() if shape is not None}


def _outputs_inferred(
    model: onnx.ModelProto, declared: Mapping[str, tuple[Dim, ...]], *, data_prop: bool
) -> dict[str, TensorType]:
    """Strict inference with the ``declared`` shapes of graph outputs set aside
    (restored after, in ``model``): an exporter may declare an output its graph does not
    compute (ddddocr's ``[1, seqlen]``, where the graph gives ``[N, 1, 8210]``). A
    declaration that agrees with what is inferred fills the dims inference left open,
    as inference does with the declarations it keeps.

    Raises:
        AuditError: inference rejects the model all the same.
    """
    aside = [value.type.tensor_type for value in model.graph.output if value.name in declared]
    kept = [onnx.TensorShapeProto() for _ in aside]
    for tensor, copy in zip(aside, kept, strict=True):
        copy.CopyFrom(tensor.shape)
        tensor.ClearField("shape")
    try:
        types = _inferred(model, strict=True, data_prop=data_prop)
    finally:
        for tensor, copy in zip(aside, kept, strict=True):
            tensor.shape.CopyFrom(copy)
    for name, wanted in declared.items():
        inferred = types.get(name)
        if inferred is not None and inferred.shape is not None:
            if not contradicts(wanted, inferred.shape):
                pairs = zip(inferred.shape, wanted, strict=True)
                shape = tuple(d if isinstance(d, int) else w for d, w in pairs)
                types[name] = dataclasses.replace(inferred, shape=shape)
    return types


def contradicts(declared: tuple[Dim, ...], computed: tuple[Dim, ...]) -> bool:
    """Whether a declared shape cannot be the computed one: their ranks differ, or a
    dim fixed in both differs."""
    return len(declared) != len(computed) or any(
        isinstance(d, int) and isinstance(c, int) and d != c
        for d, c in zip(declared, computed, strict=True)
    )


def _drop_value_info(graph: onnx.GraphProto) -> int:
    """Remove the recorded ``value_info`` of the graph and of its subgraphs (an ``If``'s
    branches record theirs too); return how many entries went."""
    dropped = len(graph.value_info)
    del graph.value_info[:]
    for node in graph.node:
        for subgraph in subgraphs(node):
            dropped += _drop_value_info(subgraph)
    return dropped


def _has_inference(model: onnx.ModelProto, domain: str, op: str) -> bool:
    """Whether onnx can infer the outputs of ``op`` at the model's opset of ``domain``."""
    domain = "" if domain == "ai.onnx" else domain
    version = next((o.version for o in model.opset_import if o.domain == domain), None)
    if version is None or not onnx.defs.has(op, domain):
        return False
    try:
        schema = onnx.defs.get_schema(op, version, domain)
    except onnx.defs.SchemaError:  # the op is newer than the model's opset
        return False
    return bool(schema.has_type_and_shape_inference_function)


def _value_type(type_proto: onnx.TypeProto) -> TensorType:
    if not type_proto.HasField("tensor_type"):
        name = (type_proto.WhichOneof("value") or "unknown_type").removesuffix("_type")
        kind = next((k for k in ValueKind if k.value == name), ValueKind.UNKNOWN)
        return TensorType(shape=None, dtype="", bits=None, integer=False, kind=kind)
    tensor = type_proto.tensor_type
    if not tensor.HasField("shape"):
        return tensor_type(tensor.elem_type, None)
    shape: list[Dim] = []
    for dim in tensor.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(dim.dim_value)
        elif dim.HasField("dim_param") and dim.dim_param:
            shape.append(dim.dim_param)
        else:
            shape.append(None)
    return tensor_type(tensor.elem_type, tuple(shape))
