"""The shape arithmetic exporters write, computed with numpy.

Folding (:mod:`onnx_flow.frontend.fold`) meets thousands of small ``Shape``,
``Gather``, ``Unsqueeze`` and ``Concat`` nodes in a legacy-exported transformer; the
ONNX reference evaluator takes about 0.2 ms to set up for each. These ops are computed
here directly, with the semantics of the ONNX operators (a test holds each against the
reference evaluator); any other op, or an attribute these do not read, goes to it.
Nothing is computed whose result would hold more than ``limit`` elements.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnx_flow.frontend.dtypes import PLAIN

__all__ = ["compute"]

#: The attributes each op reads; a node with any other is left to the evaluator.
_ATTRIBUTES: dict[str, frozenset[str]] = {
    "Shape": frozenset({"start", "end"}),
    "Size": frozenset(),
    "Unsqueeze": frozenset({"axes"}),
    "Squeeze": frozenset({"axes"}),
    "Gather": frozenset({"axis"}),
    "Concat": frozenset({"axis"}),
    "Cast": frozenset({"to"}),
    "Add": frozenset(),
    "Sub": frozenset(),
    "Mul": frozenset(),
    "Div": frozenset(),
    "Neg": frozenset(),
    "Equal": frozenset(),
    "Less": frozenset(),
    "LessOrEqual": frozenset(),
    "Greater": frozenset(),
    "GreaterOrEqual": frozenset(),
    "And": frozenset(),
    "Or": frozenset(),
    "Not": frozenset(),
    "Cos": frozenset(),
    "Sin": frozenset(),
    "Range": frozenset(),
    "Flatten": frozenset({"axis"}),
    "Expand": frozenset(),
    "Slice": frozenset(),
    "Where": frozenset(),
    "Reshape": frozenset({"allowzero"}),
    "ConstantOfShape": frozenset({"value"}),
}

_Attributes = dict[str, Any]
#: The node's inputs in order: arrays, ``None`` for an empty optional one.
_Inputs = list[Any]


def compute(
    node: onnx.NodeProto,
    inputs: Sequence[np.ndarray | None],
    shape: tuple[int, ...] | None,
    limit: int,
) -> list[np.ndarray] | None:
    """The node's outputs, or ``None`` when it is not computed here.

    Args:
        node: a standard-domain node.
        inputs: its inputs' values (``None`` for an empty optional input).
        shape: for ``Shape`` and ``Size``, its input's static shape.
        limit: the most elements an output may hold.
    """
    known = _ATTRIBUTES.get(node.op_type)
    if known is None:
        return None
    attributes: _Attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if not attributes.keys() <= known:
        return None
    if node.op_type in ("Shape", "Size"):
        if shape is None:
            return None
        if node.op_type == "Size":
            return [np.array(math.prod(shape), dtype=np.int64)]
        start, end = attributes.get("start", 0), attributes.get("end", len(shape))
        return [np.array(shape[start:end], dtype=np.int64)]
    if not inputs or inputs[0] is None:
        return None
    if node.op_type == "Cast" and attributes["to"] not in PLAIN:
        return None
    arguments = list(inputs)
    size = _SIZE_BEFORE.get(node.op_type)
    try:
        if size is not None and size(arguments) > limit:
            return None
        with np.errstate(all="ignore"):  # a cast of inf to int: the model's, not the user's
            result = _OPS[node.op_type](arguments, attributes)
    except (ValueError, IndexError, TypeError, ZeroDivisionError):  # the evaluator says why
        return None
    return [result] if result.size <= limit else None


def _count(dims: np.ndarray) -> int:
    """The element count of a shape, in Python ints (int64 products can wrap)."""
    count = 1
    for dim in dims.tolist():
        count *= int(dim)
    return count


def _range_count(inputs: _Inputs) -> int:
    """The element count of ``Range(start, limit, delta)``, before making it."""
    start, end, delta = (float(np.asarray(i)) for i in inputs[:3])
    return max(math.ceil((end - start) / delta), 0)


#: The element counts of outputs that may be large, known before computing them.
_SIZE_BEFORE: dict[str, Callable[[_Inputs], int]] = {
    "ConstantOfShape": lambda i: _count(np.asarray(i[0]).ravel()),
    "Range": _range_count,
    "Expand": lambda i: math.prod(_expanded_shape(i)),
}


def _divide(inputs: _Inputs, attributes: _Attributes) -> np.ndarray:
    """ONNX ``Div``: integers truncate toward zero (exactly, not through floats)."""
    a, b = np.asarray(inputs[0]), np.asarray(inputs[1])
    if not np.issubdtype(a.dtype, np.integer):
        return np.asarray(np.divide(a, b))
    if not np.all(b):
        raise ZeroDivisionError("integer Div by zero")
    quotient = np.abs(a) // np.abs(b)
    return np.asarray(np.where((a < 0) != (b < 0), -quotient, quotient), dtype=a.dtype)


def _expanded_shape(inputs: _Inputs) -> tuple[int, ...]:
    """ONNX ``Expand``'s output shape: the input's and the given one broadcast together."""
    shape = tuple(int(d) for d in np.asarray(inputs[1]).ravel())
    return tuple(np.broadcast_shapes(np.shape(inputs[0]), shape))


def _expand(inputs: _Inputs, attributes: _Attributes) -> np.ndarray:
    return np.array(np.broadcast_to(inputs[0], _expanded_shape(inputs)))


def _slice(inputs: _Inputs, attributes: _Attributes) -> np.ndarray:
    """ONNX ``Slice`` (opset 10 on: starts, ends, axes and steps as inputs); Python's
    slices clamp the bounds as ONNX does."""
    data = np.asarray(inputs[0])
    starts, ends = (np.asarray(i).ravel().tolist() for i in inputs[1:3])
    given = [None if i is None else np.asarray(i).ravel().tolist() for i in inputs[3:5]]
    axes = given[0] if given and given[0] is not None else list(range(len(starts)))
    steps = given[1] if len(given) > 1 and given[1] is not None else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        index[axis] = slice(start, end, step)
    return data[tuple(index)]


def _range(inputs: _Inputs, attributes: _Attributes) -> np.ndarray:
    start, end, delta = (np.asarray(i) for i in inputs[:3])
    return np.arange(start.item(), end.item(), delta.item()).astype(start.dtype)


def _flatten(inputs: _Inputs, attributes: _Attributes) -> np.ndarray:
    data = np.asarray(inputs[0])
    axis = int(attributes.get("axis", 1))
    axis += data.ndim if axis < 0 else 0
    return data.reshape(math.prod(data.shape[:axis]), -1)


def _unsqueeze(inputs: _Inputs, attributes: _Attributes) -> np.ndarray:
    axes = _axes(inputs, attributes)
    if axes is None:
        raise ValueError("Unsqueeze without axes")
    return np.expand_dims(inputs[0], axis=axes)


def _axes(inputs: _Inputs, attributes: _Attributes) -> tuple[int, ...] | None:
    """``axes`` as the second input (opset 13 on) or as the attribute before."""
    given = inputs[1] if len(inputs) > 1 else attributes.get("axes")
    return None if given is None else tuple(int(a) for a in np.asarray(given).ravel())


def _squeeze(inputs: _Inputs, attributes: _Attributes) -> np.ndarray:
    data = np.asarray(inputs[0])
    axes = _axes(inputs, attributes)
    return np.squeeze(data) if axes is None else np.squeeze(data, axis=axes)


def _reshape(inputs: _Inputs, attributes: _Attributes) -> np.ndarray:
    data, target = np.asarray(inputs[0]), np.asarray(inputs[1])
    keep_zero = attributes.get("allowzero", 0)
    shape = [
        data.shape[axis] if size == 0 and not keep_zero else int(size)
        for axis, size in enumerate(target)
    ]
    return data.reshape(shape)


def _constant_of_shape(inputs: _Inputs, attributes: _Attributes) -> np.ndarray:
    value = attributes.get("value")
    filler = numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.float32(0)
    shape = tuple(int(d) for d in np.asarray(inputs[0]))
    return np.full(shape, np.asarray(filler).ravel()[0], dtype=np.asarray(filler).dtype)


_OPS: dict[str, Callable[[_Inputs, _Attributes], np.ndarray]] = {
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Gather": lambda i, a: np.take(i[0], i[1], axis=int(a.get("axis", 0))),
    "Concat": lambda i, a: np.concatenate(i, axis=int(a["axis"])),
    "Cast": lambda i, a: np.asarray(i[0]).astype(helper.tensor_dtype_to_np_dtype(a["to"])),
    "Add": lambda i, a: np.add(i[0], i[1]),
    "Sub": lambda i, a: np.subtract(i[0], i[1]),
    "Mul": lambda i, a: np.multiply(i[0], i[1]),
    "Div": _divide,
    "Neg": lambda i, a: np.negative(i[0]),
    "Equal": lambda i, a: np.equal(i[0], i[1]),
    "Less": lambda i, a: np.less(i[0], i[1]),
    "LessOrEqual": lambda i, a: np.less_equal(i[0], i[1]),
    "Greater": lambda i, a: np.greater(i[0], i[1]),
    "GreaterOrEqual": lambda i, a: np.greater_equal(i[0], i[1]),
    "And": lambda i, a: np.logical_and(i[0], i[1]),
    "Or": lambda i, a: np.logical_or(i[0], i[1]),
    "Not": lambda i, a: np.logical_not(i[0]),
    "Cos": lambda i, a: np.cos(i[0]),
    "Sin": lambda i, a: np.sin(i[0]),
    "Range": _range,
    "Flatten": _flatten,
    "Expand": _expand,
    "Slice": _slice,
    "Where": lambda i, a: np.asarray(np.where(i[0], i[1], i[2])),
    "Reshape": _reshape,
    "ConstantOfShape": _constant_of_shape,
}
