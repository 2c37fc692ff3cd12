"""Check a model's external-data references without opening the files they name.

A tensor stored outside the model names a file (``location``) relative to the model's
folder, and a byte range in it. A hostile model can point anywhere: an absolute path,
``../`` out of the folder, a symlink to elsewhere (CVE-2022-25882, CVE-2024-27318 in
onnx's own loader). Every reference is checked here, with ``stat`` only, before anything
reads a weight (beside shape inference, which opens no external file): one that
leaves the folder, names a missing file, or holds a key or number the format does not
allow is refused.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from operator import attrgetter
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

import onnx

from onnx_flow.errors import AuditError
from onnx_flow.files import NotARegularFile, open_regular
from onnx_flow.frontend.nodes import attribute_graphs

__all__ = ["check", "external_tensors", "opened"]

_ATTRIBUTES = attrgetter("attribute")

#: Keys of ``TensorProto.external_data`` that onnx defines.
_KEYS = frozenset({"location", "offset", "length", "checksum", "basepath"})


def external_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Tensors of the graph and its subgraphs whose data is stored in another file,
    the values and indices of sparse ones included."""
    sparse = [(s.values, s.indices) for s in graph.sparse_initializer]
    for tensor in (*graph.initializer, *(t for pair in sparse for t in pair)):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor
    # Most nodes have no attribute: filter and attrgetter pass over them in C.
    for attributes in filter(None, map(_ATTRIBUTES, graph.node)):
        for attribute in attributes:
            tensors = [attribute.t] if attribute.HasField("t") else []
            for held in (
                *([attribute.sparse_tensor] if attribute.HasField("sparse_tensor") else []),
                *attribute.sparse_tensors,
            ):
                tensors += [held.values, held.indices]
            for tensor in (*tensors, *attribute.tensors):
                if tensor.data_location == onnx.TensorProto.EXTERNAL:
                    yield tensor
            for subgraph in attribute_graphs(attribute):
                yield from external_tensors(subgraph)


def check(graph: onnx.GraphProto, folder: Path | None, *, files_needed: bool = True) -> None:
    """Refuse external-data references that are malformed or leave ``folder``.

    Args:
        graph: the model's graph.
        folder: the model file's folder; ``None`` for a model in memory, whose files
            cannot be looked up (only the references themselves are checked).
        files_needed: whether the weights will be read; if not, a missing file is let
            pass (a structural audit needs the graph alone).

    Raises:
        AuditError: naming the tensor and what is wrong with its reference.
    """
    sizes: dict[str, int | str] = {}  # location -> file size, or what is wrong with it
    for tensor in external_tensors(graph):
        problem = _problem(tensor.external_data[:], folder, sizes, files_needed)
        if problem:
            raise AuditError(f"external data of tensor {tensor.name!r}: {problem}")


def _problem(
    entries: Iterable[onnx.StringStringEntryProto],
    folder: Path | None,
    sizes: dict[str, int | str],
    files_needed: bool,
) -> str | None:
    """What is wrong with one tensor's reference, or ``None``. Runs once per external
    tensor (a large model has 100,000s): each location is looked at once."""
    location, end = "", 0
    for entry in entries:
        key, value = entry.key, entry.value
        if not isinstance(key, str) or not isinstance(value, str):  # protobuf's bytes
            return f"{key!r} = {value!r} is not UTF-8"
        if key == "location":
            location = value
        elif key in ("offset", "length"):
            if not value.isdigit():
                return f"{key} {value!r} is not a non-negative integer"
            end += int(value)
        elif key not in _KEYS:
            return f"unknown key {key!r}"
    if not location:
        return "no location"
    size = sizes.get(location)
    if size is None:
        size = sizes[location] = _file_size(location, folder, files_needed)
    if isinstance(size, str):
        return size
    if end > size:
        return f"bytes up to {end} are past the end of {location!r} ({size} bytes)"
    return None


def _file_size(location: str, folder: Path | None, needed: bool) -> int | str:
    """The size of the file a location names, or why it cannot be used (a missing file
    that is not ``needed`` has no size to check)."""
    if _leaves_folder(location):
        return f"location {location!r} leaves the model's folder"
    if folder is None:
        return _UNCHECKED
    path = folder / location
    if not path.resolve().is_relative_to(folder.resolve()):
        return f"location {location!r} leaves the model's folder (through a link)"
    if not path.is_file():
        return f"file {location!r} is missing" if needed or path.exists() else _UNCHECKED
    return path.stat().st_size


def opened(folder: Path, location: str) -> BinaryIO:
    """The external-data file ``location`` names, opened for reading.

    The file is opened once and checked as opened, so that nothing swapped in after
    :func:`check` is read: a regular file, with one link (a hard link may lead out of
    the folder), inside ``folder`` by the resolved path of the descriptor itself. A
    symbolic link that stays inside the folder is followed. Read every weight of the
    file from what this returns.

    Raises:
        AuditError: the location leaves the folder, or the file is not one to read.
    """
    if _leaves_folder(location):
        raise AuditError(f"location {location!r} leaves the model's folder")
    try:
        file = open_regular(folder / location)
    except NotARegularFile:
        raise AuditError(f"external data file {location!r} is not a regular file") from None
    except OSError as error:
        raise AuditError(f"external data file {location!r}: {error.strerror}") from None
    status = os.fstat(file.fileno())
    # Linux names the file a descriptor holds; elsewhere the path is resolved again.
    held = f"/proc/self/fd/{file.fileno()}" if sys.platform == "linux" else folder / location
    if status.st_nlink != 1:
        problem = f"has {status.st_nlink} hard links: one may lead out of the folder"
    elif not Path(os.path.realpath(held)).is_relative_to(folder.resolve()):
        problem = "leaves the model's folder (through a link)"
    else:
        return file
    file.close()
    raise AuditError(f"external data file {location!r} {problem}")


#: The size of a file that cannot be looked up (a model in memory has no folder) or is
#: not read.
_UNCHECKED = 2**63


def _leaves_folder(location: str) -> bool:
    """Whether a location is absolute or climbs out with ``..``, on any platform."""
    for pure in (PurePosixPath(location), PureWindowsPath(location)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            return True
    return os.path.isabs(location)
