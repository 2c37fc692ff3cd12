"""What later stages see of the model: plain records that import no onnx.

The frontend reads the protobuf into these; measure, flow and judge read only these.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, unique
from typing import NamedTuple, TypeVar

from onnx_flow.report import Branch, DroppedOutputShape, Unused, format_shape

__all__ = [
    "FUSED_ATTENTION",
    "SHAPE_OPS",
    "STANDARD_DOMAINS",
    "SUBGRAPH_OPS",
    "Dim",
    "Node",
    "ShapedGraph",
    "TensorType",
    "ValueKind",
    "Wiring",
    "distinct",
    "file_name",
    "format_shape",
    "module_path",
    "unnamed_label",
]

#: The label of a node its file leaves unnamed: its op type and position in the graph.
_UNNAMED = re.compile(r"<[^<>#]+ #\d+>")


def unnamed_label(op_type: str, index: int) -> str:
    """The label of the unnamed node ``index`` of the graph: ``<Relu #3>``."""
    return f"<{op_type} #{index}>"


def file_name(label: str) -> str:
    """A node's name as its file writes it: empty for one :func:`unnamed_label` labels."""
    return "" if _UNNAMED.fullmatch(label) else label


#: A dim: a size, the name of a symbolic dim nobody bound, or ``None`` when unknown.
Dim = int | str | None

#: The domains of the standard ONNX operators.
STANDARD_DOMAINS = ("", "ai.onnx")

#: Ops whose outputs are values read off their input's shape, never its values.
SHAPE_OPS = frozenset({"Shape", "Size"})

#: Standard ops whose attributes hold subgraphs (custom-domain ops may hold them too).
SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})

#: Attention in one op: onnxruntime's contrib ops and opset 23's Attention.
FUSED_ATTENTION = frozenset({"Attention", "MultiHeadAttention", "GroupQueryAttention"})


@unique
class ValueKind(Enum):
    """What a graph value is: a tensor, or a kind of value with no fixed shape."""

    TENSOR = "tensor"
    SEQUENCE = "sequence"
    MAP = "map"
    OPTIONAL = "optional"
    SPARSE_TENSOR = "sparse_tensor"
    OPAQUE = "opaque"
    UNKNOWN = "unknown"
    """A type this onnx does not know."""


@dataclass(frozen=True, slots=True)
class TensorType:
    """What shape inference knows of one tensor."""

    shape: tuple[Dim, ...] | None
    """Dims after binding; ``None`` when even the rank is unknown."""
    dtype: str
    """ONNX element type name, e.g. ``FLOAT``; ``""`` for non-tensor types."""
    bits: int | None
    """Bits per element; ``None`` for strings and non-tensor types."""
    integer: bool
    """Whether the elements are integers (index tensors can be one-hot)."""
    kind: ValueKind = ValueKind.TENSOR

    @property
    def static(self) -> tuple[int, ...] | None:
        """The shape when every dim is a known size, else ``None``."""
        if self.shape is None or not all(type(d) is int for d in self.shape):
            return None
        return self.shape  # type: ignore[return-value]  # every dim is an int

    @property
    def elements(self) -> int | None:
        """The element count when the shape is static, else ``None``."""
        shape = self.static
        return None if shape is None else _product(shape)


def _product(dims: Iterable[int]) -> int:
    count = 1
    for dim in dims:
        count *= dim
    return count


_Record = TypeVar("_Record", TensorType, TensorType | None)


def distinct(records: Iterable[_Record]) -> dict[int, _Record]:
    """The distinct records by ``id`` (tensors of one type share one record), in first
    appearance order; ``map`` and ``zip`` run in C over 100,000s of them."""
    records = list(records)
    return dict(zip(map(id, records), records, strict=True))


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
    ``name_scopes`` metadata, else a scoped node name (TorchScript's ``/a/b/Op``,
    tf2onnx's ``a/b/Op``), else the name of the first weight it reads that has a
    layer part (paddle2onnx's ``linear_1.w_0``)."""
    attributes: tuple[tuple[str, int], ...] = ()
    """Integer attributes, kept for fused attention ops only (``num_heads``...)."""
    arguments: tuple[str, ...] = ()
    """Inputs by position, empty ones included, for fused attention ops only."""

    @property
    def module(self) -> str | None:
        """The framework layer that produced it (``enc.2``), ``None`` when unknown."""
        return module_path(self.scope)

    def is_standard(self, ops: Iterable[str] | None = None) -> bool:
        """Whether it is a standard ONNX op (one of ``ops``, when given)."""
        return self.domain in STANDARD_DOMAINS and (ops is None or self.op_type in ops)


class Wiring(NamedTuple):
    """What a graph's nodes tell before any shape is known: who reads and writes what."""

    nodes: tuple[Node, ...]
    """The nodes in topological order."""
    inputs: tuple[str, ...]
    """Data inputs: graph inputs that are not initializers."""
    outputs: tuple[str, ...]
    constants: frozenset[str]
    """Initializers: tensors fixed by the model, carrying no sample information."""
    producers: Mapping[str, Node]
    """Tensor -> the node that writes it (an index over ``nodes``)."""
    carrying: Mapping[str, None]
    """Tensors computed from a data input, in node order (a dict as an ordered set)."""


@dataclass(frozen=True, slots=True)
class ShapedGraph:
    """The model's graph as plain records, nodes in topological order."""

    wiring: Wiring
    """The nodes and who reads and writes what."""
    types: Mapping[str, TensorType]
    dims: Mapping[str, int]
    """Symbolic dims bound before inference (the batch dim and ``--dim`` values)."""
    declared_dims: frozenset[str]
    """Symbolic dims the model declares on its inputs and outputs (bindable by the user)."""
    fallbacks: tuple[tuple[str, int], ...] = ()
    """Fallbacks that resolved shapes ONNX inference left open: (method, tensors)."""
    branches: tuple[Branch, ...] = ()
    """The graph's ``If`` nodes and the branch followed in each (taken branches are
    inlined in ``wiring``)."""
    unused: tuple[Unused, ...] = ()
    """Dims and inputs given that the model lacks, left out."""
    dropped_output_shapes: tuple[DroppedOutputShape, ...] = ()
    """Output shapes declared that the graph does not compute, dropped."""

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The nodes in topological order."""
        return self.wiring.nodes

    @property
    def inputs(self) -> tuple[str, ...]:
        """Data inputs: graph inputs that are not initializers."""
        return self.wiring.inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        """The graph outputs, in graph order."""
        return self.wiring.outputs

    @property
    def constants(self) -> frozenset[str]:
        """Initializers: tensors fixed by the model, carrying no sample information."""
        return self.wiring.constants

    @property
    def producers(self) -> Mapping[str, Node]:
        """Tensor -> the node that writes it."""
        return self.wiring.producers

    @property
    def carrying(self) -> Mapping[str, None]:
        """Tensors computed from a data input, in node order."""
        return self.wiring.carrying

    def shape(self, name: str) -> tuple[Dim, ...] | None:
        """The tensor's dims, ``None`` when it has no type or its rank is unknown."""
        tensor = self.types.get(name)
        return tensor.shape if tensor is not None else None

    def static(self, name: str) -> tuple[int, ...] | None:
        """The tensor's static shape, ``None`` when it is not fully known."""
        tensor = self.types.get(name)
        return tensor.static if tensor is not None else None

    def walk_back(self, name: str, through: frozenset[str]) -> str:
        """Where ``name`` is passed on from through standard ``through`` ops: each op's
        one input that carries samples, or its first input when none does (a weight's).
        The walk stops at any other op, and where two inputs carry samples."""
        while True:
            producer = self.producers.get(name)
            if producer is None or not producer.inputs or not producer.is_standard(through):
                return name
            carried = [i for i in producer.inputs if i in self.carrying]
            if len(carried) > 1:
                return name
            name = carried[0] if carried else producer.inputs[0]


def module_path(scope: str | None) -> str | None:
    """The framework layer path from a node's scope (see :attr:`Node.scope`).

    The dynamo exporter records ``['', 'enc', 'enc.2', 'linear_1']``: the last scope
    names the op itself, the one before its layer. TorchScript names nodes
    ``/model/transformer/h.0/ln_1/LayerNormalization``: one scope per module, by
    attribute name, except that a numbered child of a container repeats the
    container's scope (``/enc/enc.2/Gemm`` is ``enc.2``, not ``enc.enc.2``). tf2onnx
    names them by Keras scope, ``mlp_1/squeeze_1/MatMul``: the layer is
    ``mlp_1/squeeze_1``. A weight's name (paddle2onnx's ``linear_1.w_0``, a state
    dict's ``encoder.0.weight``) less its last part is its layer.

    What tools that rewrote the file put before the name is dropped
    (``F2::If_0_then_branch__Inline_0__/decoder/rnn/LSTM`` in silero-vad's spox-built
    file is ``decoder.rnn``), and a path that names a cast or an exporter's helper is
    no layer (``None``).
    """
    if scope is None:
        return None
    if scope.startswith("["):
        path = _listed_layer(scope)
    else:
        if "::" in scope or "__Inline_" in scope:  # a substring test costs a tenth of sub
            scope = _REWRITER_PREFIX.sub("", scope, count=1)
        path = _named_layer(scope)
    return None if path is None or _HELPER.search(path) else path


#: Prefixes that tools rewriting a file put before every name: namespaces (``F2::``),
#: and spox's inlining, ``<node>_<subgraph>__`` and ``Inline_<n>__`` before the name
#: the inlined model gave (``If_0_then_branch__Inline_0__/decoder/rnn/LSTM``).
_REWRITER_PREFIX = re.compile(r"\A(?:\w+::)*(?:[^/]*__Inline_\d+__)?")

#: A path part (between ``/`` and ``.``, any case, less a ``_<n>`` suffix) that names a
#: type cast or an exporter's helper, never a layer: paddle's ``auto.cast.95`` (mixed
#: precision's cast, folded into a weight), paddle2onnx's ``p2o.helper.constant.3`` and
#: ``p2o.pd_op.reshape.6.0`` (an op's output folded into a weight), Keras' ``tf.cast_1``
#: (a lambda layer around a cast).
_HELPER = re.compile(
    r"(?<![^/.])(?:cast|autocast|auto_cast|helper|p2o)(?:_\d+)?(?![^/.])", re.IGNORECASE
)


def _listed_layer(scope: str) -> str | None:
    """The layer of the dynamo exporter's ``name_scopes``, a Python list literal."""
    # Split it (literal_eval costs 20x more) unless a name holds a quote or a comma.
    scopes: object = scope[2:-2].split("', '") if scope.endswith("']") else None
    if not isinstance(scopes, list) or any("'" in s or "," in s for s in scopes):
        try:
            scopes = ast.literal_eval(scope)
        except (ValueError, SyntaxError):
            return None
    layers = [s for s in scopes[:-1] if s] if isinstance(scopes, list) else []
    return str(layers[-1]) if layers else None


def _named_layer(scope: str) -> str | None:
    """The layer of a scoped node name (TorchScript's, tf2onnx's) or a weight's name."""
    if not scope.startswith("/"):
        separator = "/" if "/" in scope else "."
        return scope.rpartition(separator)[0] or None
    path: list[str] = []
    for part in scope.split("/")[1:-1]:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        elif part:
            path.append(part)
    return ".".join(path) or None
