"""The ``rank`` measure: a linear map passes no more directions than its weight's rank.

A 64 -> 64 layer whose weight has rank 3 passes 3 directions per position. Each MatMul,
Gemm or Conv whose weight is an initializer (also through a Transpose, a Cast or a
DequantizeLinear of one: the dequantized weight counts) caps its output at the weight's
numerical rank times the positions it is applied at: rank x (elements / output
features). A Conv is an out_channels x (in_channels / groups x kh x kw) matrix per
position (per group, the ranks adding up). The rank is numpy's ``matrix_rank``:
singular values above max(m, n) x eps x s_max (see :func:`matrix_rank`).

Weights are read one initializer at a time and dropped after their rank is known, so
memory stays near the largest single weight.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import external_data_helper, helper, numpy_helper

from onnx_flow import progress
from onnx_flow.shapes import Node, ShapedGraph

__all__ = ["caps", "matrix_rank"]

#: Ops that pass a weight on unchanged but for its layout or encoding.
_WEIGHT_PASSING = frozenset({"Transpose", "Cast", "Identity"})


def caps(
    graph: ShapedGraph, stored: Callable[[], tuple[onnx.ModelProto, Path | None]]
) -> dict[str, int]:
    """Tensor -> the most directions its producing linear map can pass.

    Args:
        graph: the shaped graph.
        stored: gives the model as stored and its folder (for external data).
    """
    maps = list(_linear_maps(graph))
    if not maps:
        return {}
    model, folder = stored()
    initializers = {t.name: t for t in model.graph.initializer}
    writers = {out: n for n in model.graph.node for out in n.output}
    found: dict[str, int] = {}
    for count, (node, weight, dequantize) in enumerate(maps, start=1):
        out = node.outputs[0]
        shape = _static(graph, out)
        values: np.ndarray | None = _read(initializers[weight], folder)
        if dequantize is not None and values is not None:
            values = _dequantized(values, writers[dequantize], initializers, folder)
        if shape and values is not None:
            groups = _groups(graph, node, initializers[weight]) if node.op_type == "Conv" else 1
            rank = _rank(values, node.op_type, groups)
            features = shape[1] if node.op_type == "Conv" else shape[-1]
            if rank is not None and features:
                found[out] = rank * (math.prod(shape) // features)
        progress.step("weight ranks", count, len(maps))
    return found


def _static(graph: ShapedGraph, name: str) -> tuple[int, ...] | None:
    """The tensor's static shape, ``None`` for a scalar or one not fully known."""
    tensor = graph.types.get(name)
    return (tensor.static or None) if tensor is not None else None


def _groups(graph: ShapedGraph, node: Node, weight: onnx.TensorProto) -> int:
    """A Conv's groups: input channels over the weight's input channels per group."""
    shape = _static(graph, node.inputs[0])
    per_group = weight.dims[1] if len(weight.dims) > 1 else 0
    if shape is None or len(shape) < 2 or not per_group or shape[1] % per_group:
        return 1
    return shape[1] // per_group


def _linear_maps(graph: ShapedGraph) -> Iterator[tuple[Node, str, str | None]]:
    """(MatMul, Gemm or Conv node, the initializer its weight comes from, the output of
    the DequantizeLinear on the way, if any)."""
    for node in graph.nodes:
        if node.domain not in ("", "ai.onnx") or len(node.inputs) < 2:
            continue
        if node.op_type in ("MatMul", "Gemm", "Conv"):
            found = _initializer(graph, node.inputs[1])
            if found is not None:
                yield node, *found


def _initializer(graph: ShapedGraph, name: str) -> tuple[str, str | None] | None:
    """The initializer a weight comes from, through transposes and casts (which keep its
    rank) and at most one DequantizeLinear; ``None`` when it is computed from data."""
    dequantize = None
    while name not in graph.constants:
        producer = graph.producers.get(name)
        if producer is None or not producer.inputs:
            return None
        if producer.op_type == "DequantizeLinear" and dequantize is None:
            dequantize = name
        elif producer.op_type not in _WEIGHT_PASSING:
            return None
        name = producer.inputs[0]
    return name, dequantize


def _dequantized(
    quantized: np.ndarray,
    node: onnx.NodeProto,
    initializers: dict[str, onnx.TensorProto],
    folder: Path | None,
) -> np.ndarray | None:
    """``(q - zero_point) * scale`` as the DequantizeLinear computes it (per tensor or
    per axis); ``None`` for blocked quantization or a scale that is not a constant."""
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attributes.get("block_size") or node.input[1] not in initializers:
        return None
    scale = _read(initializers[node.input[1]], folder).astype(np.float32)
    zero = (
        _read(initializers[node.input[2]], folder).astype(np.float32)
        if len(node.input) > 2 and node.input[2] in initializers
        else np.zeros((), np.float32)
    )
    values = quantized.astype(np.float32)
    if scale.ndim == 1 and values.ndim > 1:  # per axis: broadcast along that axis
        axis = int(attributes.get("axis", 1)) % values.ndim
        shape = [1] * values.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape) if zero.ndim else zero
    return (values - zero) * scale


def _read(tensor: onnx.TensorProto, folder: Path | None) -> np.ndarray:
    """One initializer's values. External data is mapped from its file (whose location
    :mod:`onnx_flow.external` checked), not copied: the pages read are all it costs."""
    entries = {e.key: e.value for e in tensor.external_data}
    dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    if (
        tensor.data_location == onnx.TensorProto.EXTERNAL
        and folder is not None
        and tensor.data_type not in _PACKED
    ):
        count = math.prod(tensor.dims)
        offset = int(entries.get("offset", 0))
        mapped = np.memmap(folder / entries["location"], dtype="<" + dtype.str[1:], mode="r")
        start = offset // dtype.itemsize
        if offset % dtype.itemsize == 0 and start + count <= mapped.size:
            return mapped[start : start + count].reshape(tuple(tensor.dims))
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        external_data_helper.load_external_data_for_tensor(copy, str(folder or "."))
        return numpy_helper.to_array(copy)
    return numpy_helper.to_array(tensor)


#: Element types stored packed or specially (4-bit, bfloat16, float8): read by onnx.
_PACKED = frozenset(
    {
        onnx.TensorProto.INT4,
        onnx.TensorProto.UINT4,
        onnx.TensorProto.BFLOAT16,
        onnx.TensorProto.FLOAT8E4M3FN,
        onnx.TensorProto.FLOAT8E4M3FNUZ,
        onnx.TensorProto.FLOAT8E5M2,
        onnx.TensorProto.FLOAT8E5M2FNUZ,
        onnx.TensorProto.BOOL,
        onnx.TensorProto.STRING,
    }
)


def _rank(weight: np.ndarray, op_type: str, groups: int) -> int | None:
    """The numerical rank of the linear map a weight defines; ``None`` for a shape that
    is not a matrix (or, for a Conv, out_channels x in_channels/groups x kernel)."""
    if op_type == "Conv":
        if weight.ndim < 2 or weight.shape[0] % groups:
            return None
        # Each group maps its own channels: the map is block-diagonal, ranks add up.
        blocks = weight.reshape(groups, weight.shape[0] // groups, -1)
        return sum(matrix_rank(block) for block in blocks)
    if weight.ndim != 2:
        return None
    return matrix_rank(weight)


#: Columns of a weight converted to float64 at a time.
_CHUNK = 4096


def matrix_rank(matrix: np.ndarray) -> int:
    """numpy's ``matrix_rank`` (singular values above max(m, n) x eps x s_max, with
    float32's eps for float32 and narrower weights), from the small side's Gram matrix.

    The Gram matrix of an m x n weight (m <= n) is m x m, summed over chunks of
    columns: memory stays near the weight itself, where an SVD of a 768 x 50257 LM head
    needs several copies of it. Its eigenvalues are the squared singular values, exact
    in float64 far below the tolerance (float32's eps times n, squared, is above
    float64's eps).
    """
    if matrix.dtype == np.float64:
        return int(np.linalg.matrix_rank(matrix))  # its eps is below what a Gram resolves
    if matrix.shape[0] > matrix.shape[1]:
        matrix = matrix.T
    rows, columns = matrix.shape
    if not rows or not columns:
        return 0
    gram = np.zeros((rows, rows))
    for start in range(0, columns, _CHUNK):
        block = np.asarray(matrix[:, start : start + _CHUNK], dtype=np.float64)
        gram += block @ block.T
    squares = np.linalg.eigvalsh(gram)
    largest = squares.max()
    if largest <= 0:
        return 0
    tolerance = np.sqrt(largest) * max(rows, columns) * np.finfo(np.float32).eps
    return int((np.sqrt(np.clip(squares, 0, None)) > tolerance).sum())
