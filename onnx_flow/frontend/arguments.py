"""The arguments a model needs before it can be audited, asked for all at once.

A width needs every data input's whole shape. Once the given dims and shapes are bound
(:func:`onnx_flow.frontend.shapes.bind`), an input whose shape is still open is refused
here, before inference, with everything the model lacks in one line: the symbolic dims
with names the user knows (``--dim sequence_length=N``), the shapes of inputs whose open
dims have no such name (``--input-shape x=1,3,H,W``, the known dims filled in), and the
values of inputs an undecided ``If`` reads (``--input-value sr=V``); then the command
line to run, ready to paste once the placeholders are replaced, and the same in Python.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import onnx

from onnx_flow.errors import AuditError
from onnx_flow.frontend import symbols
from onnx_flow.frontend.load import Source, display_name
from onnx_flow.frontend.symbols import value_text
from onnx_flow.records import Dim, format_shape
from onnx_flow.report import Branch

__all__ = ["Arguments", "require"]

#: Placeholders for the open dims of one input, in order; past them, ``D<axis>``.
_LETTERS = "NMKLPQRS"

#: The most elements an input may have to be asked for by value: a switch (a sample
#: rate, ``use_cache_branch``), not data that only a run decides.
_VALUE_ELEMENTS = 16


@dataclass(frozen=True, slots=True)
class Arguments:
    """The arguments that shape a model's inputs, given or asked for; a size or value
    not yet known is a placeholder (``N``, ``H``, ``V``)."""

    dims: Mapping[str, int | str] = field(default_factory=dict)
    """Sizes of named symbolic dims (``--dim``)."""
    input_shapes: Mapping[str, tuple[int | str, ...]] = field(default_factory=dict)
    """Whole shapes of data inputs (``--input-shape``)."""
    input_values: Mapping[str, tuple[float | str, ...]] = field(default_factory=dict)
    """Values of data inputs (``--input-value``)."""
    batch_dim: str | None = None
    """The dim bound to 1 (``--batch-dim``), when given."""

    def merged(self, other: Arguments) -> Arguments:
        """These arguments, and ``other``'s after them."""
        return Arguments(
            {**self.dims, **other.dims},
            {**self.input_shapes, **other.input_shapes},
            {**self.input_values, **other.input_values},
            other.batch_dim or self.batch_dim,
        )

    def flags(self) -> list[str]:
        """The command line's spelling, one word per item."""
        words = ["--batch-dim", self.batch_dim] if self.batch_dim is not None else []
        for flag, items in (
            ("--dim", {name: (size,) for name, size in self.dims.items()}),
            ("--input-shape", self.input_shapes),
            ("--input-value", self.input_values),
        ):
            for name, values in items.items():
                words += [flag, f"{name}={','.join(map(value_text, values))}"]
        return words

    def python(self) -> str:
        """Python's spelling: the keyword arguments of :func:`onnx_flow.audit`."""
        keywords = [f"batch_dim={self.batch_dim!r}"] if self.batch_dim is not None else []
        for keyword, items in (
            ("dims", {name: value_text(size) for name, size in self.dims.items()}),
            ("input_shapes", {n: _python_tuple(shape) for n, shape in self.input_shapes.items()}),
            ("input_values", {n: _python_value(v) for n, v in self.input_values.items()}),
        ):
            if items:
                pairs = ", ".join(f"{name!r}: {text}" for name, text in items.items())
                keywords.append(f"{keyword}={{{pairs}}}")
        return ", ".join(keywords)


def require(
    model: onnx.ModelProto,
    followed: tuple[Branch, ...],
    *,
    bound: Mapping[str, int],
    given: Arguments,
    source: Source,
) -> None:
    """Refuse a model whose data inputs are not all of static shape once ``bound`` and
    ``given`` are applied, naming all it needs in one line.

    Args:
        model: the model, its dims bound and its decided ``If`` branches taken.
        followed: the ``If`` nodes met (:func:`onnx_flow.frontend.branches.follow`);
            the inputs an undecided one reads are asked for by value too.
        bound: the dims bound, by name.
        given: the arguments given, written again into the command line.
        source: the model's path, for the command line (none for a model in memory).

    Raises:
        AuditError: a data input's shape is open.
    """
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    data = {
        value.name: symbols.declared_shape(value)
        for value in graph.input
        if value.name not in constants and value.type.HasField("tensor_type")
    }
    asked: list[str] = []
    dims: dict[str, str] = {}
    shapes: dict[str, tuple[int | str, ...]] = {}
    for name, shape in data.items():
        if shape is None:
            asked.append(f"the shape of input {name!r} (none declared)")
            shapes[name] = ("D1", "D2", "...")
        elif any(not isinstance(d, int) and not symbols.usable(d, shape) for d in shape):
            asked.append(f"the shape of input {name!r} {format_shape(shape)}")
            shapes[name] = _placeholders(shape)
        else:
            for dim in shape:
                if isinstance(dim, str):
                    dims.update(dict.fromkeys(symbols.dim_names(dim) - bound.keys(), "N"))
    if not (dims or shapes):
        return
    if dims:
        asked.append(_dims_text(sorted(dims)))
    values: dict[str, tuple[str, ...]] = {}
    for branch, name, elements in _switches(followed, data, given):
        if name not in values:
            values[name] = ("V",) if elements == 1 else tuple(f"V{i + 1}" for i in range(elements))
            asked.append(f"the value of input {name!r} (If {branch.node!r} reads it)")
    count = len(dims) + len(shapes) + len(values)
    needed = given.merged(Arguments(dict(sorted(dims.items())), shapes, values))
    command = shlex.join(needed.flags())
    if isinstance(source, onnx.ModelProto):
        how = f"give {command}"
    else:
        how = f"run: {shlex.join(['onnx-flow', 'audit', display_name(source)])} {command}"
    raise AuditError(
        f"needs {count} argument{'s' if count > 1 else ''}: {', '.join(asked)};"
        f" {how} ({needed.python()} in Python)"
    )


def _dims_text(names: list[str]) -> str:
    """``the sizes of dims 'a', 'b' and 'c'``."""
    quoted = [repr(name) for name in names]
    if len(quoted) == 1:
        return f"the size of dim {quoted[0]}"
    return f"the sizes of dims {', '.join(quoted[:-1])} and {quoted[-1]}"


def _switches(
    followed: tuple[Branch, ...], data: Mapping[str, tuple[Dim, ...] | None], given: Arguments
) -> Iterator[tuple[Branch, str, int]]:
    """The undecided ``If`` nodes, each with an input of static, small shape (a switch)
    whose value decides it, and its element count; an input whose shape is open is
    asked for its shape first."""
    for branch in followed:
        if branch.taken is not None:
            continue
        for name in branch.inputs:
            shape = data.get(name)
            if shape is None or name in given.input_values:
                continue
            sizes = [d for d in shape if isinstance(d, int)]
            if len(sizes) == len(shape) and math.prod(sizes) <= _VALUE_ELEMENTS:
                yield branch, name, math.prod(sizes)


def _placeholders(shape: tuple[Dim, ...]) -> tuple[int | str, ...]:
    """The shape with a placeholder for each open dim: ``H`` and ``W`` for an image's
    (the open dims of a rank-4 shape around fixed channels, first or last), else
    ``N``, ``M``, ..."""
    open_axes = [axis for axis, dim in enumerate(shape) if not isinstance(dim, int)]
    if len(shape) == 4 and open_axes in ([2, 3], [1, 2]):
        names = iter("HW")
    else:
        names = iter(_LETTERS)
    return tuple(
        dim if isinstance(dim, int) else next(names, f"D{axis}") for axis, dim in enumerate(shape)
    )


def _python_tuple(items: tuple[float | str, ...]) -> str:
    texts = [value_text(item) for item in items]
    return f"({texts[0]},)" if len(texts) == 1 else f"({', '.join(texts)})"


def _python_value(values: tuple[float | str, ...]) -> str:
    return value_text(values[0]) if len(values) == 1 else _python_tuple(values)
