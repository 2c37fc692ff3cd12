"""``--resume``: what a JSON Lines file already holds, and which models it spares.

Each line written to ``--output`` carries a ``fingerprint``: the SHA-256 of what the
audit reads (the model file; with ``rank`` or ``data``, its external-data files too;
with ``data``, the samples) and of how it is audited (every option, and the version of
onnx-flow). A model whose line holds the fingerprint it has now is not audited again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any, BinaryIO

from onnx_flow.errors import AuditError
from onnx_flow.files import open_regular
from onnx_flow.frontend.load import digest
from onnx_flow.options import Measure, Options
from onnx_flow.version import __version__

__all__ = ["fingerprint", "finished", "options_digest"]


def options_digest(options: Options) -> str:
    """The SHA-256 of the options (the samples' bytes included) and the version, in hex.

    Raises:
        AuditError: the samples cannot be read.
    """
    described = json.dumps(
        {"version": __version__, "options": dataclasses.asdict(options)},
        sort_keys=True,
        default=repr,
    )
    content = hashlib.sha256(described.encode())
    if options.inputs is not None:
        with _opened(options.inputs, "--inputs") as samples:
            while chunk := samples.read(2**20):
                content.update(chunk)
    return content.hexdigest()


def fingerprint(model: str, options: Options, options_hex: str) -> str | None:
    """The model's fingerprint under options of digest ``options_hex``; ``None`` when
    its file cannot be read (its line is then audited again)."""
    weights = options.measure in (Measure.RANK, Measure.DATA)
    try:
        content = digest(model, weights=weights)
    except AuditError:
        return None
    return "sha256:" + hashlib.sha256(f"{content}:{options_hex}".encode()).hexdigest()


def finished(output: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The lines of ``output`` that hold a fingerprint, by model and fingerprint: none
    if the file does not exist. An unfinished last line (a run stopped while writing
    it) is cut off, so that the next line starts whole.

    Raises:
        AuditError: the file is not a regular one, or cannot be read or cut.
    """
    if not os.path.lexists(output):
        return {}
    with _opened(output, "--output", update=True) as file:
        try:
            data = file.read()
            whole = data.rfind(b"\n") + 1
            if whole < len(data):
                file.truncate(whole)
        except OSError as error:
            raise AuditError(f"--output {output}: {error.strerror}") from None
    lines = _entries(data[:whole].splitlines())
    return {(entry["model"], entry["fingerprint"]): entry for entry in lines}


def _opened(path: str, option: str, *, update: bool = False) -> BinaryIO:
    """The regular file at ``path``, opened without waiting (a FIFO is refused).

    Raises:
        AuditError: it cannot be opened, or is not a regular file.
    """
    try:
        return open_regular(path, update=update)
    except OSError as error:
        raise AuditError(f"{option} {path}: {error.strerror}") from None


def _entries(lines: Iterable[bytes]) -> Iterable[dict[str, Any]]:
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:  # not a line of ours: it spares nothing
            continue
        if _well_formed(entry):
            yield entry


def _well_formed(entry: object) -> bool:
    """Whether ``entry`` is a line as this module's caller writes them: a model, its
    fingerprint, and an error or what the exit code reads of a report."""
    if not (
        isinstance(entry, dict)
        and isinstance(entry.get("model"), str)
        and isinstance(entry.get("fingerprint"), str)
    ):
        return False
    if "error" in entry:
        return isinstance(entry["error"], str)
    findings = entry.get("findings")
    return (
        isinstance(entry.get("dims"), dict)
        and isinstance(entry.get("bottleneck"), bool)
        and isinstance(findings, list)
        and all(isinstance(f, dict) and isinstance(f.get("kind"), str) for f in findings)
    )
