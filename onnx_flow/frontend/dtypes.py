"""ONNX element types: their names, bits, which are integers, how numpy holds them."""

from __future__ import annotations

import numpy as np
import onnx

from onnx_flow.records import TensorType

__all__ = [
    "BITS",
    "ELEMENT_TYPES",
    "INTEGER_TYPES",
    "PACKED",
    "PLAIN",
    "TYPE_NAMES",
    "numpy_dtype",
]

#: ONNX element types whose values are integers.
INTEGER_TYPES = frozenset(
    {
        onnx.TensorProto.INT8,
        onnx.TensorProto.INT16,
        onnx.TensorProto.INT32,
        onnx.TensorProto.INT64,
        onnx.TensorProto.UINT8,
        onnx.TensorProto.UINT16,
        onnx.TensorProto.UINT32,
        onnx.TensorProto.UINT64,
    }
)

#: ONNX element type name -> number.
ELEMENT_TYPES = dict(onnx.TensorProto.DataType.items())
TYPE_NAMES = {number: name for name, number in ELEMENT_TYPES.items()}

#: Bits per element of ONNX tensor types; a bool carries one bit, 4-bit types four.
BITS: dict[int, int] = {
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


#: Element types stored packed or specially (4-bit, bfloat16, float8): read by onnx.
PACKED = frozenset(
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


#: Element types numpy casts to exactly as ONNX does.
PLAIN = INTEGER_TYPES | {
    onnx.TensorProto.BOOL,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.DOUBLE,
}


def numpy_dtype(record: TensorType) -> np.dtype | None:
    """The numpy dtype of a tensor type; ``None`` when it has no element type numpy
    holds."""
    number = ELEMENT_TYPES.get(record.dtype)
    if number is None:
        return None
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(number))
    except (KeyError, TypeError, ValueError):  # a string or a newer type
        return None
