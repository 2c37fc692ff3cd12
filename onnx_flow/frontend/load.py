"""Read an ONNX model's graph without its weights.

Weights stored as external data are never opened; :func:`check_external` checks their
references (:mod:`onnx_flow.frontend.external`). Weights stored inline are dropped
(dims and dtype kept) before anything else runs, except small tensors of any dtype,
which shape inference may read as values (the target shape of a ``Reshape``, the float
scales of a ``Resize``, the pads of a ``Pad``). Local functions are inlined so that
every op is visible to shape inference and to the flow.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
from pathlib import Path

import onnx
import onnx.inliner
from google.protobuf.message import DecodeError

from onnx_flow.errors import AuditError, first_line
from onnx_flow.files import NotARegularFile, open_regular
from onnx_flow.frontend import external
from onnx_flow.frontend.nodes import constant_tensor

__all__ = [
    "DATA_FIELDS",
    "Model",
    "Source",
    "check_external",
    "digest",
    "display_name",
    "elements",
    "load",
    "stored",
]

#: A model in memory.
Model = onnx.ModelProto

#: What the audit reads: the path of an ``.onnx`` file, or a model in memory.
Source = str | os.PathLike[str] | onnx.ModelProto

#: The largest message protobuf parses: 2 GiB.
_PROTOBUF_LIMIT = 2**31 - 1

#: Initializers up to this many elements keep their values, whatever their dtype. Shape
#: arguments hold one value per axis (a few dozen at most), while a layer's weight
#: holds thousands: 1024 keeps every shape argument and drops all but the smallest
#: weights, at no more than 8 KiB a tensor.
_KEPT_ELEMENTS = 1024

#: TensorProto fields that hold inline values.
DATA_FIELDS = (
    "raw_data",
    "float_data",
    "int32_data",
    "int64_data",
    "double_data",
    "uint64_data",
    "string_data",
)


def load(source: Source, *, nodes: int) -> onnx.ModelProto:
    """Return a private copy of the model's graph, weights dropped and functions inlined.

    Its external-data references are left to :func:`check_external`, which must pass
    before anything reads the weights.

    Args:
        source: path of an ``.onnx`` file, or a model already in memory (left unchanged).
        nodes: the most nodes the graph may have once its local functions are inlined.

    Raises:
        AuditError: the path is missing or not a file, the file is not an ONNX model, or
            inlining would give more than ``nodes`` nodes.
    """
    if isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
    else:
        model = _read(Path(source))
    name = display_name(source)
    if not model.HasField("graph") or model.ir_version == 0:
        raise AuditError(f"{name}: not an ONNX model (no graph or no IR version)")
    for tensor in model.graph.initializer:
        _drop_data(tensor)
    for node in model.graph.node:  # paddle2onnx and others store weights in Constants
        tensor = constant_tensor(node)
        if tensor is not None:
            _drop_data(tensor)
    try:
        inlined = _inlined_size(model)
    except RecursionError:
        raise AuditError(f"{name}: its local functions nest too deeply to inline") from None
    if inlined > nodes:
        raise AuditError(
            f"{name}: its graph, local functions inlined, has {inlined:,} nodes, above the"
            f" limit of {nodes:,} (--limit nodes=N)"
        )
    if model.functions:
        try:
            model = onnx.inliner.inline_local_functions(model)
        except Exception as error:  # the C++ inliner raises bare RuntimeErrors
            raise AuditError(f"{name}: cannot inline local functions: {error}") from None
    return model


def _inlined_size(model: onnx.ModelProto) -> int:
    """The nodes of the main graph once every call of a local function is inlined,
    counted without inlining (a function that calls another twice per level grows as
    2**depth). A function that calls itself counts as unbounded."""
    bodies = {(f.domain, f.name): f for f in model.functions}
    sizes: dict[tuple[str, str], float] = {}

    def size(key: tuple[str, str]) -> float:
        if key not in sizes:
            sizes[key] = math.inf  # a call back into itself, while it is being counted
            sizes[key] = sum(
                size((n.domain, n.op_type)) if (n.domain, n.op_type) in bodies else 1
                for n in bodies[key].node
            )
        return sizes[key]

    total = sum(
        size((n.domain, n.op_type)) if (n.domain, n.op_type) in bodies else 1
        for n in model.graph.node
    )
    return int(min(total, 2**63))


def check_external(model: onnx.ModelProto, source: Source) -> None:
    """Refuse the model's external-data references that are malformed or leave the
    folder of ``source`` (see :mod:`onnx_flow.frontend.external`); nothing is opened. A
    missing file is let pass: the structure needs none, and what reads weights
    (:class:`~onnx_flow.frontend.stored.Stored`) refuses it.

    Raises:
        AuditError: naming the tensor and what is wrong with its reference.
    """
    folder = None if isinstance(source, onnx.ModelProto) else Path(source).parent
    external.check(model.graph, folder, files_needed=False)


def stored(source: Source) -> tuple[onnx.ModelProto, Path | None]:
    """The model as stored, to be run: inline weights kept, external data left in the
    returned folder (``None`` for a model in memory). The caller owns the copy."""
    if isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
        return model, None
    return _read(Path(source)), Path(source).parent


def display_name(source: Source) -> str:
    """The model's name in reports: the path as given, ``<model>`` for one in memory."""
    return "<model>" if isinstance(source, onnx.ModelProto) else os.fspath(source)


def _read(path: Path) -> onnx.ModelProto:
    """Parse the file's protobuf without opening external data."""
    return _parsed(_contents(path), path)


def _parsed(data: bytes, path: Path) -> onnx.ModelProto:
    try:
        return onnx.load_model_from_string(data)
    except (DecodeError, RuntimeError, ValueError) as error:
        raise AuditError(f"{path}: not an ONNX model ({first_line(error)})") from None


def _contents(path: Path) -> bytes:
    """The file's bytes: it is opened once, checked as opened (a regular file within
    protobuf's limit), and read from that descriptor."""
    try:
        file = open_regular(path)
    except ValueError:  # a NUL in the path: no file can have that name
        raise AuditError(f"{str(path)!r}: a path cannot hold a NUL byte") from None
    except NotARegularFile:
        raise AuditError(f"{path}: not a file") from None
    except OSError as error:
        reasons = {errno.ENOENT: "no such file", errno.ELOOP: "a loop of symbolic links"}
        reason = reasons.get(error.errno or 0) or _strerror(error)
        raise AuditError(f"{path}: {reason}") from None
    with file:
        if os.fstat(file.fileno()).st_size > _PROTOBUF_LIMIT:
            raise AuditError(
                f"{path}: over 2 GB, more than protobuf can parse; save the model with its"
                " weights as external data (onnx.save(..., save_as_external_data=True))"
            )
        try:
            return file.read()
        except OSError as error:
            raise AuditError(f"{path}: cannot read ({_strerror(error)})") from None


def digest(path: str, *, weights: bool) -> str:
    """The SHA-256 of the model file, and with ``weights`` of the external-data files
    it names too (each by its location; one that cannot be opened by the location it
    names), in hex: what an audit of the file reads.

    Raises:
        AuditError: the model file cannot be read.
    """
    data = _contents(Path(path))
    content = hashlib.sha256(data)
    if weights:
        model = _parsed(data, Path(path))
        folder = Path(path).parent
        for location in sorted({_location(t) for t in external.external_tensors(model.graph)}):
            stored = hashlib.sha256()
            try:
                with external.opened(folder, location) as file:
                    while chunk := file.read(_CHUNK):
                        stored.update(chunk)
            except AuditError as error:  # the audit refuses it: its reason is the content
                stored.update(str(error).encode())
            content.update(location.encode("utf-8", "surrogateescape") + b"\0" + stored.digest())
    return content.hexdigest()


#: Bytes of an external-data file hashed at a time.
_CHUNK = 2**20


def _location(tensor: onnx.TensorProto) -> str:
    return next((e.value for e in tensor.external_data if e.key == "location"), "")


def _strerror(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def elements(tensor: onnx.TensorProto) -> int:
    """The tensor's element count, from its dims (1 for a scalar)."""
    return math.prod(tensor.dims)


def _drop_data(tensor: onnx.TensorProto) -> None:
    """Clear an inline initializer's or ``Constant``'s values unless shape inference may
    need them."""
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return
    if elements(tensor) <= _KEPT_ELEMENTS:
        return
    for field in DATA_FIELDS:
        tensor.ClearField(field)
