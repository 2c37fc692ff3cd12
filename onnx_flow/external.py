"""Check a model's external-data references without opening the files they name.

A tensor stored outside the model names a file (``location``) relative to the model's
folder, and a byte range in it. A hostile model can point anywhere: an absolute path,
``../`` out of the folder, a symlink to elsewhere (CVE-2022-25882, CVE-2024-27318 in
onnx's own loader). Every reference is checked here, with ``stat`` only, before any
other stage runs: one that leaves the folder, names a missing file, or holds a key or
number the format does not allow is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx

from onnx_flow.errors import AuditError

__all__ = ["check", "external_tensors"]

#: Keys of ``TensorProto.external_data`` that onnx defines.
_KEYS = frozenset({"location", "offset", "length", "checksum", "basepath"})


def external_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Tensors of the graph and its subgraphs whose data is stored in another file."""
    for tensor in graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor
    for node in graph.node:
        for attribute in node.attribute:
            tensors = [attribute.t] if attribute.HasField("t") else []
            for tensor in (*tensors, *attribute.tensors):
                if tensor.data_location == onnx.TensorProto.EXTERNAL:
                    yield tensor
            for subgraph in (
                *([attribute.g] if attribute.HasField("g") else []),
                *attribute.graphs,
            ):
                yield from external_tensors(subgraph)


def check(graph: onnx.GraphProto, folder: Path | None) -> None:
    """Refuse external-data references that are malformed or leave ``folder``.

    Args:
        graph: the model's graph.
        folder: the model file's folder; ``None`` for a model in memory, whose files
            cannot be looked up (only the references themselves are checked).

    Raises:
        AuditError: naming the tensor and what is wrong with its reference.
    """
    sizes: dict[str, int] = {}
    for tensor in external_tensors(graph):
        entries = {entry.key: entry.value for entry in tensor.external_data}
        problem = _problem(entries, folder, sizes)
        if problem:
            raise AuditError(f"external data of tensor {tensor.name!r}: {problem}")


def _problem(entries: dict[str, str], folder: Path | None, sizes: dict[str, int]) -> str | None:
    """What is wrong with one tensor's reference, or ``None``."""
    unknown = sorted(set(entries) - _KEYS)
    if unknown:
        return f"unknown key {unknown[0]!r}"
    location = entries.get("location", "")
    if not location:
        return "no location"
    numbers: dict[str, int] = {}
    for key in ("offset", "length"):
        if key in entries:
            text = entries[key]
            if not text.isdigit():
                return f"{key} {text!r} is not a non-negative integer"
            numbers[key] = int(text)
    if _leaves_folder(location):
        return f"location {location!r} leaves the model's folder"
    if folder is None:
        return None
    if location not in sizes:
        path = folder / location
        if not path.resolve().is_relative_to(folder.resolve()):
            return f"location {location!r} leaves the model's folder (through a link)"
        if not path.is_file():
            return f"file {location!r} is missing"
        sizes[location] = path.stat().st_size
    end = numbers.get("offset", 0) + numbers.get("length", 0)
    if end > sizes[location]:
        return f"bytes {numbers.get('offset', 0)}..{end} are past the end of {location!r}"
    return None


def _leaves_folder(location: str) -> bool:
    """Whether a location is absolute or climbs out with ``..``, on any platform."""
    for pure in (PurePosixPath(location), PureWindowsPath(location)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            return True
    return os.path.isabs(location)
