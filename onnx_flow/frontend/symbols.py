"""Symbolic dims: which the model declares, which are bound, and binding them.

The batch dim (axis 0 of the data inputs: named, unnamed or ``-1``, or ``--batch-dim``)
is bound to 1 and ``--dim NAME=N`` binds the others. A dim named by an expression
(``past_sequence_length + sequence_length``) takes its size from the names it adds,
subtracts or multiplies. ``--input-shape NAME=D1,D2,...`` gives a data input its whole
shape, for dims that have no usable name (none, a negative size, which exporters write
for "any", or a placeholder the exporter made up: :func:`usable`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping

import onnx

from onnx_flow.errors import AuditError
from onnx_flow.records import Dim, format_shape
from onnx_flow.report import Unused

__all__ = [
    "bind",
    "bindings",
    "data_input",
    "declared",
    "declared_shape",
    "dim_names",
    "shape_inputs",
    "unused",
    "usable",
    "value_text",
]


def bind(values: Iterable[onnx.ValueInfoProto], sizes: Mapping[str, int]) -> None:
    """Give every symbolic dim of ``values`` that ``sizes`` determines its size, and clear
    negative sizes (exporters write ``-1`` for "any"), in place; one pass over the dims."""
    known: dict[str, int | None] = {}  # dim_param -> its size, once per distinct text
    for value in values:
        for dim in value.type.tensor_type.shape.dim:
            kind = dim.WhichOneof("value")
            if kind == "dim_param":
                param = dim.dim_param
                if param not in known:
                    known[param] = _size(param, sizes)
                size = known[param]
                if size is not None:
                    dim.dim_value = size
            elif kind == "dim_value" and dim.dim_value < 0:
                dim.Clear()


def declared(graph: onnx.GraphProto) -> frozenset[str]:
    """Names of the symbolic dims of the graph's inputs and outputs, the names inside
    expressions (``past_sequence_length + sequence_length``) included."""
    return frozenset(
        name
        for value in (*graph.input, *graph.output)
        for dim in value.type.tensor_type.shape.dim
        if dim.HasField("dim_param") and dim.dim_param
        for name in dim_names(dim.dim_param)
    )


_ARITHMETIC = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__}


def dim_names(param: str) -> set[str]:
    """The dim names a dim_param refers to: itself, or the names of its expression."""
    if param.isidentifier():
        return {param}
    try:
        tree = ast.parse(param, mode="eval")
    except SyntaxError:
        return {param}
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} or {param}


#: Names exporters make up for a dim they know nothing about: paddle2onnx's ``?`` and
#: ``p2o.DynamicDimension.1``, tf2onnx's ``unk__12``, the TorchScript exporter's
#: ``x_dynamic_axes_1``. Binding one by name says nothing the user knows.
_PLACEHOLDER = re.compile(r"\?|unk__\d+|.*DynamicDimension.*|.*_dynamic_axes_\d+", re.IGNORECASE)


def usable(dim: Dim, shape: tuple[Dim, ...]) -> bool:
    """Whether a dim of ``shape`` that is not a size has a name ``--dim`` can bind on its
    own: not none, not a name an exporter made up (:data:`_PLACEHOLDER`), and not a
    text that is no identifier standing for several axes (binding it would make, say,
    height and width alike)."""
    if not isinstance(dim, str) or not dim or _PLACEHOLDER.fullmatch(dim):
        return False
    return dim.isidentifier() or shape.count(dim) == 1


def _size(param: str, bindings: Mapping[str, int]) -> int | None:
    """A dim_param's size: a bound name, or +, - and * of bound names and integers."""
    if param in bindings:
        return bindings[param]
    if param.isidentifier():
        return None
    try:
        size = _evaluate(ast.parse(param, mode="eval").body, bindings)
    except (SyntaxError, KeyError, TypeError, RecursionError):
        return None
    return size if size > 0 else None


def _evaluate(node: ast.expr, bindings: Mapping[str, int]) -> int:
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _evaluate(node.left, bindings), _evaluate(node.right, bindings)
        return _ARITHMETIC[type(node.op)](left, right)
    if isinstance(node, ast.Name):
        return bindings[node.id]
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    raise TypeError(f"not an integer expression: {ast.dump(node)}")


def bindings(
    graph: onnx.GraphProto,
    inputs: tuple[str, ...],
    declared: frozenset[str],
    dims: dict[str, int],
    batch_dim: str | None,
) -> dict[str, int]:
    """Return the dims to bind: the user's (all ``declared``: :func:`unused`), plus the
    batch dim at 1 unless given.

    Raises:
        AuditError: the model has no dim named ``batch_dim``.
    """
    if batch_dim is not None and batch_dim not in declared:
        raise AuditError(f"--batch-dim {batch_dim}: {_no_dim(batch_dim, declared)}")
    if batch_dim is not None:
        batch_dims = {batch_dim}
    else:
        batch_dims = set()
        for value in graph.input:
            if value.name in inputs:
                shape = value.type.tensor_type.shape.dim
                if shape and shape[0].HasField("dim_param") and shape[0].dim_param:
                    batch_dims.add(shape[0].dim_param)
    return {name: dims.get(name, 1) for name in sorted(batch_dims)} | dims


def unused(
    graph: onnx.GraphProto,
    inputs: tuple[str, ...],
    declared: frozenset[str],
    dims: Mapping[str, int],
    input_shapes: Mapping[str, tuple[int, ...]],
    input_values: Mapping[str, tuple[float, ...]],
) -> tuple[Unused, ...]:
    """The dims, input shapes and input values given that name a dim or a data input
    the model lacks."""
    data = [value.name for value in graph.input if value.name in inputs]
    no_input = "the model has no data input named {!r} (its data inputs: " + ", ".join(data) + ")"
    found = [
        Unused("dims", name, f"--dim {name}={size}", _no_dim(name, declared))
        for name, size in dims.items()
        if name not in declared
    ]
    for setting, flag, named in (
        ("input_shapes", "--input-shape", input_shapes),
        ("input_values", "--input-value", input_values),
    ):
        found += [
            Unused(
                setting,
                name,
                f"{flag} {name}={','.join(map(value_text, v))}",
                no_input.format(name),
            )
            for name, v in named.items()
            if name not in data
        ]
    return tuple(found)


def value_text(value: float | str) -> str:
    """A size or value as the command line writes it: ``16000``, not ``16000.0``."""
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _no_dim(name: str, declared: frozenset[str]) -> str:
    return (
        f"the model has no dim named {name!r}"
        f" (its symbolic dims: {', '.join(sorted(declared)) or 'none'})"
    )


def shape_inputs(
    graph: onnx.GraphProto, inputs: tuple[str, ...], shapes: Mapping[str, tuple[int, ...]]
) -> None:
    """Give data inputs their whole ``shapes`` (``--input-shape``), and axis 0 of the
    others, when it has neither a size nor a name, the batch size 1; in place (after
    :func:`bind`, which cleared negative sizes).

    Raises:
        AuditError: a name in ``shapes`` is no data input, or a shape contradicts the
            input's rank or one of its fixed dims.
    """
    data = {value.name: value for value in graph.input if value.name in inputs}
    for name, shape in shapes.items():
        flag = f"--input-shape {name}={','.join(map(str, shape))}"
        declared = declared_shape(data_input(data, name, flag))
        if declared is not None:
            if len(declared) != len(shape):
                raise AuditError(
                    f"{flag}: {name!r} has {len(declared)} dims"
                    f" (shape {format_shape(declared)}), not {len(shape)}"
                )
            for axis, (dim, size) in enumerate(zip(declared, shape, strict=True)):
                if isinstance(dim, int) and dim != size:
                    raise AuditError(
                        f"{flag}: dim {axis} of {name!r} is fixed at {dim}, not {size}"
                    )
        tensor = data[name].type.tensor_type
        tensor.shape.Clear()
        for size in shape:
            tensor.shape.dim.add().dim_value = size
    for name, value in data.items():
        dims = value.type.tensor_type.shape.dim
        if name not in shapes and dims and _dims(dims[:1]) == (None,):
            dims[0].dim_value = 1


def data_input(
    data: Mapping[str, onnx.ValueInfoProto], name: str, flag: str
) -> onnx.ValueInfoProto:
    """Data input ``name`` among ``data``, for the option ``flag`` that names it.

    Raises:
        AuditError: the model has no data input of that name.
    """
    if name not in data:
        raise AuditError(
            f"{flag}: the model has no data input named {name!r}"
            f" (its data inputs: {', '.join(data)})"
        )
    return data[name]


def declared_shape(value: onnx.ValueInfoProto) -> tuple[Dim, ...] | None:
    """A value's declared shape as records; ``None`` when it declares none."""
    tensor = value.type.tensor_type
    return _dims(tensor.shape.dim) if tensor.HasField("shape") else None


def _dims(dims: Iterable[onnx.TensorShapeProto.Dimension]) -> tuple[Dim, ...]:
    """Declared dims as records: a size, a name, or ``None`` for neither."""
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims)
