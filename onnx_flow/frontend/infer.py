"""ONNX shape inference, read into one type record per tensor.

onnx's C++ inference holds the GIL for its whole run, and reading a large graph into
records (:mod:`onnx_flow.frontend.nodes`) is Python work of about the same length: a
graph of :data:`FORK_NODES` nodes or more is worth inferring in a child process
(:mod:`onnx_flow.frontend.fork`) while the caller reads it. The child computes
:func:`value_types`; the initializers' types (:func:`constant_types`) are read by the
caller meanwhile.
"""

from __future__ import annotations

import onnx
import onnx.shape_inference

from onnx_flow.errors import AuditError, first_line
from onnx_flow.frontend.load import INTEGER_TYPES
from onnx_flow.records import SHAPE_OPS, SUBGRAPH_OPS, Dim, TensorType

__all__ = [
    "ELEMENT_TYPES",
    "FORK_NODES",
    "constant_types",
    "infer_types",
    "tensor_type",
    "value_types",
]

#: Graphs this large infer in a child process. Measured on the bench's residual MLP
#: (the audit in process, imports aside): 0.28 s instead of 0.38 s at 20,000 nodes,
#: 0.14 s instead of 0.19 s at 10,000, 0.09 s instead of 0.10 s at 5,000; at 2,000 the
#: fork and the types' transfer cost what the overlap saves.
FORK_NODES = 5_000

#: ONNX element type name -> number.
ELEMENT_TYPES = dict(onnx.TensorProto.DataType.items())
_TYPE_NAMES = {number: name for name, number in ELEMENT_TYPES.items()}

# Bits per element of ONNX tensor types; a bool carries one bit, 4-bit types four.
_BITS: dict[int, int] = {
    onnx.TensorProto.FLOAT: 32,
    onnx.TensorProto.UINT8: 8,
    onnx.TensorProto.INT8: 8,
    onnx.TensorProto.UINT16: 16,
    onnx.TensorProto.INT16: 16,
    onnx.TensorProto.INT32: 32,
    onnx.TensorProto.INT64: 64,
    onnx.TensorProto.BOOL: 1,
    onnx.TensorProto.FLOAT16: 16,
    onnx.TensorProto.DOUBLE: 64,
    onnx.TensorProto.UINT32: 32,
    onnx.TensorProto.UINT64: 64,
    onnx.TensorProto.COMPLEX64: 64,
    onnx.TensorProto.COMPLEX128: 128,
    onnx.TensorProto.BFLOAT16: 16,
    onnx.TensorProto.FLOAT8E4M3FN: 8,
    onnx.TensorProto.FLOAT8E4M3FNUZ: 8,
    onnx.TensorProto.FLOAT8E5M2: 8,
    onnx.TensorProto.FLOAT8E5M2FNUZ: 8,
    onnx.TensorProto.UINT4: 4,
    onnx.TensorProto.INT4: 4,
}


def tensor_type(elem_type: int, shape: tuple[Dim, ...] | None) -> TensorType:
    """The record of a tensor of ONNX element type number ``elem_type``."""
    # An element type newer than this onnx (or a corrupt one) keeps its number.
    name = _TYPE_NAMES.get(elem_type, f"element type {elem_type}") if elem_type else ""
    return TensorType(
        shape=shape, dtype=name, bits=_BITS.get(elem_type), integer=elem_type in INTEGER_TYPES
    )


def infer_types(model: onnx.ModelProto) -> dict[str, TensorType]:
    """Infer the model's shapes, strictly, and return every tensor's type; tensors of
    the same type share one record.

    Raises:
        AuditError: shape inference rejects the model.
    """
    return {**constant_types(model.graph), **value_types(model)}


def constant_types(graph: onnx.GraphProto) -> dict[str, TensorType]:
    """The initializers' types, read off the graph."""
    types: dict[str, TensorType] = {}
    by_dims: dict[tuple[int, tuple[int, ...]], TensorType] = {}
    for tensor in graph.initializer:
        key = (tensor.data_type, tuple(tensor.dims[:]))  # a slice: one call, not an iteration
        record = by_dims.get(key)
        if record is None:
            record = by_dims[key] = tensor_type(*key)
        types[tensor.name] = record
    return types


def value_types(model: onnx.ModelProto) -> dict[str, TensorType]:
    """The types of the graph's inputs, outputs and values, after inference; tensors of
    the same type share one record (which pickle then sends once).

    Raises:
        AuditError: shape inference rejects the model.
    """
    # Data propagation carries values computed from shapes; without a Shape or Size op
    # (nor a subgraph that may hold one) there are none, constant Reshape targets are
    # read anyway, and it costs 25% more.
    ops = {node.op_type for node in model.graph.node}
    data_prop = not ops.isdisjoint(SHAPE_OPS | SUBGRAPH_OPS)
    try:
        # Strict: a conflict (an Add of widths 3 and 5, from --dim values that do not fit
        # the model or from a broken model) is an error, not a shape quietly kept.
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=data_prop)
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


def _value_type(type_proto: onnx.TypeProto) -> TensorType:
    if not type_proto.HasField("tensor_type"):
        kind = (type_proto.WhichOneof("value") or "unknown_type").removesuffix("_type")
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
