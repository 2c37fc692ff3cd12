"""ONNX shape inference, read into one type record per tensor.

onnx's C++ inference holds the GIL for its whole run, and reading a large graph into
records (:mod:`onnx_flow.shapes`) is Python work of about the same length. So a graph
of :data:`FORK_NODES` nodes or more is inferred in a forked child process while the
caller reads the graph, and the child sends back the types alone. The caller's check
of the model (the external-data references) runs where a process would otherwise
wait: in the caller if the types are not ready when it asks, else in the child after
sending them. Forking is done on Linux, in a process that runs no other Python
thread: a lock another thread held at the fork would stay held in the child. Native
threads that wait idle are no such risk, as the child runs nothing but onnx's
inference, the check and pickle (numpy's OpenBLAS starts its workers on import, and
restarts them after a fork). Elsewhere, and for smaller graphs, the check and then
inference run in the caller when it asks for the result.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import astuple, dataclass
from typing import Any, NoReturn, TypeVar

import onnx
import onnx.shape_inference

from onnx_flow.errors import AuditError, first_line
from onnx_flow.load import INTEGER_TYPES

__all__ = [
    "ELEMENT_TYPES",
    "FORK_NODES",
    "SHAPE_OPS",
    "SUBGRAPH_OPS",
    "Dim",
    "TensorType",
    "distinct",
    "infer_types",
    "inferring",
    "tensor_type",
]

#: A dim: a size, the name of a symbolic dim nobody bound, or ``None`` when unknown.
Dim = int | str | None

#: Ops whose outputs are values read off their input's shape, never its values.
SHAPE_OPS = frozenset({"Shape", "Size"})

#: Standard ops whose attributes hold subgraphs (custom-domain ops may hold them too).
SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})

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
    kind: str = "tensor"
    """``tensor``, or the value kind that has no fixed shape: ``sequence``, ``optional``,
    ``map``, ``sparse_tensor``."""

    @property
    def static(self) -> tuple[int, ...] | None:
        """The shape when every dim is a known size, else ``None``."""
        if self.shape is None or not all(type(d) is int for d in self.shape):
            return None
        return self.shape  # type: ignore[return-value]  # every dim is an int


_Record = TypeVar("_Record", TensorType, TensorType | None)


def distinct(records: Iterable[_Record]) -> dict[int, _Record]:
    """The distinct records by ``id`` (tensors of one type share one record), in first
    appearance order; ``map`` and ``zip`` run in C over 100,000s of them."""
    records = list(records)
    return dict(zip(map(id, records), records, strict=True))


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
    return {**_constant_types(model.graph), **_inferred_types(model)}


def _constant_types(graph: onnx.GraphProto) -> dict[str, TensorType]:
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


def _inferred_types(model: onnx.ModelProto) -> dict[str, TensorType]:
    """The types of the graph's inputs, outputs and values, after inference."""
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


@contextlib.contextmanager
def inferring(
    model: onnx.ModelProto, *, check: Callable[[], object] | None = None
) -> Iterator[Callable[[], dict[str, TensorType]]]:
    """Start :func:`infer_types` on the model; the context gives the function that waits
    for its result (and raises its errors). The model must not change inside the
    context; leaving it stops a child process that is still running.

    ``check``, a function that only reads the model and raises :class:`AuditError`,
    runs beside inference where a process would otherwise wait: here, if the types are
    not ready when asked for; else in the child, once it has sent them. Its error comes
    after the body's and before inference's, whichever process runs it.
    """
    child = None
    if len(model.graph.node) >= FORK_NODES and _may_fork():
        with contextlib.suppress(OSError):  # no process or pipe to spare: infer here
            child = _Child(model, check)
    if child is None:

        def inferred() -> dict[str, TensorType]:
            if check is not None:
                check()
            return infer_types(model)

        yield inferred
        return
    try:
        # The constants' types are read here, while the child may still be inferring.
        yield lambda: {**_constant_types(model.graph), **child.result()}
        child.checked()
    finally:
        child.stop()


def _may_fork() -> bool:
    """Whether this process can fork safely: Linux, and no other Python thread."""
    return sys.platform == "linux" and threading.active_count() == 1


class _Child:
    """A forked process that infers the model's value types, then runs the check (which
    the caller runs itself if it asks for the types before they are sent).

    Each message (the types, then the check's error or ``None``) is pickled into a
    memory file and announced on a pipe by its length: the child never waits for the
    parent to read, and a child that dies leaves the pipe at its end.
    """

    def __init__(self, model: onnx.ModelProto, check: Callable[[], object] | None) -> None:
        self._data = os.memfd_create("onnx-flow-types")
        try:
            reading, writing = os.pipe()
        except OSError:
            os.close(self._data)
            raise
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns of any other thread; the module docstring says why
                # the idle native ones are no risk here.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:
            for descriptor in (reading, writing, self._data):
                os.close(descriptor)
            raise
        if pid == 0:
            os.close(reading)
            _serve(model, check, _Messages(writing, self._data))
        os.close(writing)
        self._pid = pid
        self._pipe = reading
        self._read = 0  # bytes of the memory file read so far
        self._status: int | None = None  # the wait status, once reaped
        self._typed = False  # whether the types were received
        self._check = check  # None once run here (or when there is none)

    def result(self) -> dict[str, TensorType]:
        if self._check is not None and not self._types_sent():
            # Still inferring: check here rather than wait (the child checks too).
            self._check()
            self._check = None
        kind, value = self._receive()
        self._typed = True
        if kind == "error":
            raise AuditError(value)
        names, indices, records = value
        distinct = [TensorType(*record) for record in records]
        return dict(zip(names, map(distinct.__getitem__, indices), strict=True))

    def checked(self) -> None:
        """Unless the check ran here: wait for its outcome, reap the child, and raise
        the check's error."""
        if not self._typed:
            self.result()
        if self._check is None:
            return
        _, error = self._receive()
        self._reap()
        if error is not None:
            raise AuditError(error)

    def _types_sent(self) -> bool:
        """Whether the child has announced its first message (or ended)."""
        return bool(select.select([self._pipe], [], [], 0)[0])

    def stop(self) -> None:
        """Kill the child unless it was reaped, and close the pipe and the file."""
        if self._status is None:
            os.kill(self._pid, signal.SIGKILL)
            self._reap()
        os.close(self._pipe)
        os.close(self._data)

    def _receive(self) -> tuple[str, Any]:
        """The child's next message; its end without one is an error."""
        announced = os.read(self._pipe, _LENGTH)
        if len(announced) < _LENGTH:
            raise AuditError(f"shape inference crashed ({_ended(self._reap())})")
        length = int.from_bytes(announced, "little")
        message: tuple[str, Any] = pickle.loads(os.pread(self._data, length, self._read))
        self._read += length
        return message

    def _reap(self) -> int:
        _, self._status = os.waitpid(self._pid, 0)
        return self._status


#: Bytes that announce a message's length on the pipe (one write: it arrives whole).
_LENGTH = 8


class _Messages:
    """The child's end: pickles written to the memory file, lengths to the pipe."""

    def __init__(self, pipe: int, data: int) -> None:
        self._pipe, self._data = pipe, data

    def send(self, message: tuple[str, object]) -> None:
        payload = memoryview(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        written = 0
        while written < len(payload):
            written += os.write(self._data, payload[written:])
        os.write(self._pipe, len(payload).to_bytes(_LENGTH, "little"))


def _serve(model: onnx.ModelProto, check: Callable[[], object] | None, out: _Messages) -> NoReturn:
    """In the child: infer, send the types (shared records sent once), run the check,
    send its error, and exit."""
    code = 1
    try:
        try:
            types = _inferred_types(model)
        except AuditError as error:
            out.send(("error", _error_of(check) or str(error)))  # the check's comes first
        else:
            shared = distinct(types.values())
            numbers = {key: number for number, key in enumerate(shared)}
            records = [astuple(t) for t in shared.values()]
            indices = list(map(numbers.__getitem__, map(id, types.values())))
            out.send(("types", (list(types), indices, records)))
            out.send(("checked", _error_of(check)))
        code = 0
    finally:
        os._exit(code)  # no atexit handlers, no flushing of buffers the parent owns


def _error_of(check: Callable[[], object] | None) -> str | None:
    """What ``check`` raised, or ``None``."""
    try:
        if check is not None:
            check()
    except AuditError as error:
        return str(error)
    return None


def _ended(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:  # a signal without a name (a real-time one)
        return f"killed by signal {-code}"


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
