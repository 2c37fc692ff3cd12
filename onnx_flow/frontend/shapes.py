"""Bind symbolic dims, then complete what shape inference leaves open.

ONNX shape inference (with data propagation) is not guaranteed complete: a tensor it
leaves without a shape, or with a dim it could not resolve, keeps that gap here
(``None`` dims, or the name of a symbol it made up) for the widths to report, once
folding constants and onnxruntime's fallbacks have had their turn.

The audit runs the steps in order: :func:`bind` the dims in place, :func:`infer` the
types (beside reading the nodes), then :func:`complete` them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import onnx

from onnx_flow.errors import AuditError
from onnx_flow.frontend import branches, fallback, inference, nodes, symbols
from onnx_flow.frontend.arguments import Arguments
from onnx_flow.frontend.dtypes import ELEMENT_TYPES
from onnx_flow.frontend.fold import fold_values, known_values
from onnx_flow.frontend.stored import Stored
from onnx_flow.records import ShapedGraph, TensorType, ValueKind, Wiring, distinct
from onnx_flow.report import Branch, DroppedOutputShape, Unused

__all__ = ["Binding", "bind", "complete", "infer"]

#: Rounds of "fold what is constant, infer again"; each resolves one more layer of
#: shape arithmetic, and exporters nest it only a few deep.
_FOLD_ROUNDS = 8

#: The most input elements the onnxruntime run feeds (1 GiB of float32).
_RUN_ELEMENTS = 2**28


@dataclass(frozen=True, slots=True)
class Binding:
    """The symbolic dims of a model: those it declares, and those bound."""

    dims: Mapping[str, int]
    """Dims bound before inference (the batch dim and ``--dim`` values)."""
    declared: frozenset[str]
    """Dims the model declares on its inputs and outputs (bindable by the user)."""
    values: Mapping[str, np.ndarray]
    """Values given for data inputs (``--input-value``), in their dtype and shape."""
    given: Arguments
    """The arguments given that apply to the model, as given."""
    unused: tuple[Unused, ...] = ()
    """Dims and inputs given that the model lacks, left out (``lenient``)."""


def bind(
    model: onnx.ModelProto,
    *,
    dims: Mapping[str, int] | None = None,
    batch_dim: str | None = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    input_values: Mapping[str, tuple[float, ...]] | None = None,
    lenient: bool = False,
) -> Binding:
    """Bind symbolic dims in ``model`` (in place), ready for shape inference.

    Args:
        model: a model from :func:`onnx_flow.frontend.load.load`, which the pipeline owns.
        dims: sizes for named symbolic dims (``--dim seq=128``).
        batch_dim: the dim to bind to 1; by default the symbolic dim on axis 0 of the
            data inputs. A value for it in ``dims`` wins.
        input_shapes: whole shapes of data inputs (``--input-shape``); they win over
            ``dims`` on those inputs.
        input_values: values of data inputs (``--input-value``) of static shapes.
        lenient: leave out the dims and inputs named in ``dims``, ``input_shapes`` and
            ``input_values`` that the model lacks (settings shared by several models),
            listing them in :attr:`Binding.unused`; else the first is an error.

    Raises:
        AuditError: the model has no data inputs, a name is not UTF-8, a dim or input
            named is not in the model (unless ``lenient``; ``batch_dim`` always), or an
            input shape or input value does not fit.
    """
    graph = model.graph
    constants = frozenset(t.name for t in graph.initializer)
    inputs = tuple(i.name for i in graph.input if i.name not in constants)
    if not inputs:
        raise AuditError("the model has no data inputs: every graph input is an initializer")
    values = (*graph.input, *graph.output)
    nodes.check_text(
        [v.name for v in values],
        [d.dim_param for v in values for d in v.type.tensor_type.shape.dim],
        constants,
    )
    declared = symbols.declared(graph)
    unused = symbols.unused(
        graph, inputs, declared, dims or {}, input_shapes or {}, input_values or {}
    )
    if unused and not lenient:
        raise AuditError(f"{unused[0].option}: {unused[0].reason}")
    left_out = {(u.setting, u.name) for u in unused}
    kept_dims = _kept(dims, "dims", left_out)
    bindings = symbols.bindings(graph, inputs, declared, kept_dims, batch_dim)
    symbols.bind(_value_infos(graph), bindings)
    kept_shapes = _kept(input_shapes, "input_shapes", left_out)
    kept_values = _kept(input_values, "input_values", left_out)
    symbols.shape_inputs(graph, inputs, kept_shapes)
    arrays = branches.input_values(graph, inputs, kept_values)
    given = Arguments(kept_dims, kept_shapes, kept_values, batch_dim)
    return Binding(bindings, declared, arrays, given, unused)


_Value = TypeVar("_Value")


def _kept(
    named: Mapping[str, _Value] | None, setting: str, left_out: set[tuple[str, str]]
) -> dict[str, _Value]:
    """The entries of ``setting`` (a table by name) not ``left_out``."""
    return {name: v for name, v in (named or {}).items() if (setting, name) not in left_out}


def infer(model: onnx.ModelProto) -> inference.Inferred:
    """The types after ONNX inference, then again after folding the shape arithmetic
    it did not propagate, round after round (each infers only the part left open).

    ``model`` keeps its nodes: a wiring read from it before stays right. On a large
    graph this runs in a child process, which only sends back the types.

    Raises:
        AuditError: shape inference rejects the model or a part of the folded model.
    """
    types, notes = inference.value_types(model)
    if _all_static(types):
        return inference.Inferred(types, notes)  # most graphs: nothing to fold or read
    values = known_values(model.graph)
    protos = model.graph.node
    links = nodes.Links.of(model.graph)
    # Past the first round, only the part inferred again can fold more: the values
    # found elsewhere decide no open type.
    foldable: Iterable[int] = range(len(protos))
    for _ in range(_FOLD_ROUNDS):
        found = fold_values(protos, links, foldable, types, values)
        if not found:
            break
        types.update(_folded_types(found, values, types))
        part = inference.open_part(model, links, types, values)
        if part is None:
            break
        more, how = inference.value_types(part.model)
        types.update(more)
        foldable = part.nodes
        notes = (*notes, *(note for note in how if note[0] not in dict(notes)))
        if _all_static(types):
            break
    return inference.Inferred(types, notes)


def _folded_types(
    found: list[str], values: Mapping[str, np.ndarray], types: Mapping[str, TensorType]
) -> dict[str, TensorType]:
    """The types of the values found whose inferred types are not static."""
    return {
        name: inference.tensor_type(
            onnx.helper.np_dtype_to_tensor_dtype(values[name].dtype), values[name].shape
        )
        for name in found
        if name not in types or types[name].static is None
    }


def complete(
    model: onnx.ModelProto,
    wiring: Wiring,
    inferred: inference.Inferred,
    binding: Binding,
    *,
    source: str | os.PathLike[str] | onnx.ModelProto,
    followed: tuple[Branch, ...] = (),
    run_limits: tuple[float, int],
) -> ShapedGraph:
    """The shaped graph: the types ``inferred`` (:func:`infer`), completed where they
    leave shapes open: by onnxruntime's symbolic inference, then by one onnxruntime run
    of the model as stored at ``source``, on synthetic inputs (and the given input
    values), within ``run_limits`` (seconds, bytes of address space). Run only after
    the external-data check. ``followed`` are the ``If``
    branches taken (:func:`branches.follow`).
    """
    types, notes = inferred
    resolved = _resolved(wiring, types)
    fallbacks = (
        ()
        if resolved
        else _fall_back(model, wiring, types, binding.values, source, followed, run_limits)
    )
    return ShapedGraph(
        wiring=wiring,
        types=types,
        dims=binding.dims,
        declared_dims=binding.declared,
        fallbacks=(*notes, *fallbacks),
        branches=followed,
        unused=binding.unused,
        dropped_output_shapes=tuple(_dropped_output_shapes(model.graph, types)),
    )


def _dropped_output_shapes(
    graph: onnx.GraphProto, types: Mapping[str, TensorType]
) -> Iterator[DroppedOutputShape]:
    """The graph outputs whose declared shape the shapes found contradict."""
    for value in graph.output:
        declared = symbols.declared_shape(value)
        computed = types.get(value.name)
        if declared is None or computed is None or computed.shape is None:
            continue
        if inference.contradicts(declared, computed.shape):
            yield DroppedOutputShape(value.name, declared, computed.shape)


def _fall_back(
    model: onnx.ModelProto,
    wiring: Wiring,
    types: dict[str, TensorType],
    values: Mapping[str, np.ndarray],
    source: str | os.PathLike[str] | onnx.ModelProto,
    followed: tuple[Branch, ...],
    run_limits: tuple[float, int],
) -> tuple[tuple[str, int], ...]:
    """Resolve open shapes with onnxruntime, in place in ``types``; say what was used.
    ``run_limits``: the seconds and bytes of memory the onnxruntime run may take."""
    open_ = _open(wiring.carrying, types)
    used: list[tuple[str, int]] = []
    if open_:
        found = _static(fallback.symbolic(model, open_))
        types.update(found)
        open_ -= found.keys()
        if found:
            used.append((fallback.SYMBOLIC, len(found)))
    if open_:
        feeds: dict[str, tuple[int, tuple[int, ...]]] = {}
        for name in wiring.inputs:
            tensor = types.get(name)
            if tensor is None or not tensor.dtype or tensor.static is None:
                return tuple(used)  # a run needs every input's shape and type
            feeds[name] = (ELEMENT_TYPES[tensor.dtype], tensor.static)
        if sum(math.prod(shape) for _, shape in feeds.values()) > _RUN_ELEMENTS:
            return tuple(used)  # synthetic inputs that large are a broken model, not a run
        stored = Stored(source, followed)
        seconds, memory = run_limits
        shapes = fallback.run(stored, feeds, open_, values=values, seconds=seconds, memory=memory)
        found = _static(shapes)
        types.update(found)
        if found:
            used.append((fallback.RUN, len(found)))
    return tuple(used)


def _open(carrying: Mapping[str, None], types: Mapping[str, TensorType]) -> set[str]:
    """Tensors carrying sample information whose shape is not fully known (tensors only).

    The rest never needs a width, nor a fallback that loads the weights to find one.
    """
    types_open = {
        key
        for key, tensor in distinct(types.values()).items()
        if tensor.kind is ValueKind.TENSOR and tensor.static is None
    }
    untyped = carrying.keys() - types.keys()
    if not types_open:
        return untyped
    return untyped | {name for name in carrying if id(types.get(name)) in types_open}


def _static(shapes: fallback.Shapes) -> dict[str, TensorType]:
    """The fully known shapes among fallback results, as types."""
    found = {name: inference.tensor_type(elem, dims) for name, (elem, dims) in shapes.items()}
    return {name: t for name, t in found.items() if t.dtype and t.static is not None}


def _resolved(wiring: Wiring, types: Mapping[str, TensorType]) -> bool:
    """Whether every tensor a node writes has a type, and every type a static shape
    (then no tensor is open, and nothing is left to fall back for)."""
    return wiring.producers.keys() <= types.keys() and _all_static(types)


def _all_static(types: Mapping[str, TensorType]) -> bool:
    """Whether every type has a static shape (tensors of one type share one record)."""
    return all(t.static is not None for t in distinct(types.values()).values())


def _value_infos(graph: onnx.GraphProto) -> Iterator[onnx.ValueInfoProto]:
    yield from graph.input
    yield from graph.output
    yield from graph.value_info
