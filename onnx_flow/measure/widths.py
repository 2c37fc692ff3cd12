"""Turn shapes into capacities: how much of one sample a tensor can hold.

A width is an int per sample: the batch dim was bound to 1 before inference, a fixed
batch of N counts as it stands. ``elements`` is the product of the dims; ``bits``
multiplies it by the bits of the element type. An integer tensor that indexes rows of
a constant table (an embedding ``Gather``) counts as one-hot: V per index, so the
embedding is a V -> d layer like any other; where the head is judged apart (the
default), an id counts as the width of what embeds it, min(V, d): the vocabulary is
the head's business, and a factorised embedding (ALBERT's V -> 128 -> 768) is no
squeeze. Tensors computed only from shapes and constants (``Shape``, ``Size`` and what
follows from them) carry no sample information and get no width: they are not part of
the flow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from onnx_flow.errors import AuditError
from onnx_flow.options import Measure
from onnx_flow.records import ShapedGraph, TensorType, ValueKind, distinct, format_shape
from onnx_flow.report import LayerSpectrum

__all__ = ["Widths", "compute"]

_GATHER = frozenset({"Gather"})

#: Ops through which integer ids stay the same choice of rows: rearranged, cast,
#: clipped, or wrapped (Keras 3 writes ``where(ids < 0, ids + V, ids)``, which tf2onnx
#: lowers to masks multiplied and added).
_INDEX_ARITHMETIC = frozenset(
    {
        *("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose", "Expand"),
        *("Cast", "Clip", "Where", "Add", "Sub", "Mul", "Mod", "Neg", "Abs", "Min", "Max"),
    }
)


@dataclass(frozen=True, slots=True)
class Widths:
    """Capacities of the tensors that carry sample information."""

    known: Mapping[str, int]
    """Width of each carrying tensor whose shape is fully resolved."""
    unknown: Mapping[str, str]
    """Carrying tensors whose width could not be resolved, with the reason."""
    one_hot: Mapping[str, int]
    """Integer index tensors counted as one-hot, with their vocabulary size V."""
    samples: int | None = None
    """For the ``data`` measure: how many samples the caps come from (none exceeds it)."""
    centred: bool | None = None
    """For the ``data`` measure: whether the activations were centred."""
    uncapped: Mapping[str, int] = field(default_factory=dict)
    """Tensors whose width a cap lowered (the ``rank`` and ``data`` measures), with
    their element count: an output must still deliver that many values."""
    energy: float | None = None
    """The energy fraction the caps hold; ``None``: they are numerical ranks."""
    spectra: tuple[LayerSpectrum, ...] = ()
    """The spectra the caps were read from, in graph order."""

    def carries(self, name: str) -> bool:
        """Whether the tensor carries sample information (its width known or not)."""
        return name in self.known or name in self.unknown


#: The widest a tensor can be in any measure: 2**64 elements of 128 bits. Beyond it a
#: shape is corrupt or hostile (and its width, past 4,300 digits, would not even print).
MAX_WIDTH = 2**64 * 128


def compute(
    graph: ShapedGraph,
    *,
    measure: Measure = Measure.ELEMENTS,
    caps: Mapping[str, int] | None = None,
    samples: int | None = None,
    centred: bool | None = None,
    energy: float | None = None,
    spectra: tuple[LayerSpectrum, ...] = (),
    embedded: bool = False,
) -> Widths:
    """Return the width of every tensor that carries sample information.

    ``caps`` (for the ``rank`` and ``data`` measures) lowers the element count of the
    tensors it names; ``energy`` and ``spectra`` say how they were found. With
    ``embedded``, ids count min(V, d) per index, the width of the table row that embeds
    them, not V.

    Raises:
        AuditError: a width needs a symbolic dim the model declares and nobody bound, or
            a shape has a negative dim or more than 2**64 elements.
    """
    carrying = graph.carrying
    types = list(map(graph.types.get, carrying))
    # Tensors of one type share one record: each distinct type's width is found once,
    # and handed to the tensors in passes that run in C.
    kinds = distinct(types)
    by_type = {key: _width(tensor, measure) for key, tensor in kinds.items()}
    for key, width in by_type.items():
        if isinstance(width, str) or not (width > MAX_WIDTH or _negative(kinds[key])):
            continue
        name = next(n for n, t in zip(carrying, types, strict=True) if id(t) == key)
        tensor = kinds[key]
        assert tensor is not None  # it has a width
        if _negative(tensor):
            raise AuditError(
                f"tensor {name!r} has a negative dim: {format_shape(tensor.shape or ())}"
            )
        raise AuditError(
            f"tensor {name!r} has more than 2**64 elements ({len(tensor.shape or ())} dims):"
            " no model can hold it"
        )
    widths = dict(zip(carrying, map(by_type.__getitem__, map(id, types)), strict=True))
    one_hot = _one_hot(graph, carrying)
    for name, (rows, row, table_bits) in one_hot.items():
        chosen = min(rows, row) if embedded else rows
        widths[name] = _one_hot_width(graph.types.get(name), chosen, table_bits, measure)
    unknown: dict[str, str] = {}
    overridden = map(widths.__getitem__, one_hot)
    if any(isinstance(width, str) for width in (*by_type.values(), *overridden)):
        unknown = {name: width for name, width in widths.items() if isinstance(width, str)}
        for name in unknown:
            del widths[name]
    known = cast(dict[str, int], widths)  # the reasons went to ``unknown``
    unbound: dict[str, str] = {}
    for name in unknown:
        for symbol in _symbols(graph.types.get(name)):
            if symbol in graph.declared_dims:
                unbound.setdefault(symbol, name)
    if unbound:
        symbol = min(unbound)
        raise AuditError(
            f"dim {symbol!r} is symbolic and tensor {unbound[symbol]!r} needs it:"
            f" bind it with --dim {symbol}=N (dims={{{symbol!r}: N}} in Python)"
        )
    uncapped = {}
    for name, cap in (caps or {}).items():
        if name in known and cap < known[name]:
            uncapped[name], known[name] = known[name], cap
    return Widths(
        known=known,
        unknown=unknown,
        one_hot={name: v for name, (v, _, _) in one_hot.items()},
        uncapped=uncapped,
        samples=samples,
        centred=centred,
        energy=energy,
        spectra=spectra,
    )


def _width(tensor: TensorType | None, measure: Measure) -> int | str:
    """A tensor's width in ``measure`` (not counting one-hot rows), or why it has none."""
    elements = _elements(tensor)
    if isinstance(elements, str) or measure is not Measure.BITS:
        return elements
    assert tensor is not None  # a tensor with no type has no element count
    if tensor.bits is None:
        return _no_bit_width(tensor)
    return elements * tensor.bits


def _one_hot_width(
    tensor: TensorType | None, rows: int, table_bits: int | None, measure: Measure
) -> int | str:
    """An index tensor's width as the rows it picks from a table of ``rows`` rows (one
    hot: ``rows`` elements per index, of the table's bits), or why it has none."""
    elements = _elements(tensor)
    if isinstance(elements, str):
        return elements
    assert tensor is not None  # a tensor with no type has no element count
    bits = table_bits if measure is Measure.BITS else 1
    return _no_bit_width(tensor) if bits is None else elements * rows * bits


def _no_bit_width(tensor: TensorType) -> str:
    return f"element type {tensor.dtype or 'non-tensor'} has no bit width"


def _one_hot(
    graph: ShapedGraph, carrying: Mapping[str, None]
) -> dict[str, tuple[int, int, int | None]]:
    """Index tensors that pick rows of a constant table: name -> (V, elements of a row,
    bits of the table)."""
    found: dict[str, tuple[int, int, int | None]] = {}
    gathers = [node for node in graph.nodes if node.is_standard(_GATHER) and len(node.inputs) > 1]
    for node in gathers:
        table_name, indices = node.inputs[0], node.inputs[1]
        table, index = graph.types.get(table_name), graph.types.get(indices)
        if table_name in carrying or indices not in carrying or table is None or index is None:
            continue
        if not index.integer or table.shape is None or not table.shape:
            continue
        rows, *row = table.shape  # exporters gather embeddings along axis 0
        if not isinstance(rows, int) or not all(isinstance(d, int) for d in row):
            continue
        row_elements = math.prod(cast(list[int], row))
        for name in _index_web(graph, indices, carrying):
            if rows > found.get(name, (0, 0, None))[0]:
                found[name] = (rows, row_elements, table.bits)
    return found


def _index_web(graph: ShapedGraph, indices: str, carrying: Mapping[str, None]) -> list[str]:
    """The integer tensors the ``indices`` are computed from by index arithmetic, them
    included: the same ids reshaped, cast or wrapped on the way (``input_ids.view(-1,
    n)``, ``where(ids < 0, ids + V, ids)``) are the same one-hot choice."""
    web: list[str] = []
    pending, seen = [indices], {indices}
    while pending:
        name = pending.pop()
        tensor = graph.types.get(name)
        if name not in carrying or tensor is None or not tensor.integer:
            continue
        web.append(name)
        producer = graph.producers.get(name)
        if producer is not None and producer.is_standard(_INDEX_ARITHMETIC):
            fresh = [i for i in producer.inputs if i and i not in seen]
            seen.update(fresh)
            pending.extend(fresh)
    return web


def _symbols(tensor: TensorType | None) -> list[str]:
    if tensor is None or tensor.shape is None:
        return []
    return [d for d in tensor.shape if isinstance(d, str)]


def _negative(tensor: TensorType | None) -> bool:
    """Whether a shape has a negative dim (ONNX defines none)."""
    return tensor is not None and any(isinstance(d, int) and d < 0 for d in tensor.shape or ())


def _elements(tensor: TensorType | None) -> int | str:
    """The tensor's element count, or why it has none."""
    if tensor is None:
        return "no type after shape inference"
    if tensor.kind is not ValueKind.TENSOR:
        return f"{tensor.kind.value.replace('_', ' ')} value, not a tensor: no fixed width"
    if tensor.shape is None:
        return "shape unknown after shape inference"
    symbols = _symbols(tensor)
    if symbols:
        return f"symbolic dim {symbols[0]!r} left by shape inference"
    elements = tensor.elements
    return "a dim is unknown after shape inference" if elements is None else elements
