"""Audit one model: here (:func:`audit_one`), or in a sandbox (:func:`sandbox`), a
preloaded server (:mod:`onnx_flow.processes.server`) that audits each model it is sent
in a child of its own, cut at the model's limits.

The child has ``--limit model-memory`` bytes of address space and is killed after
``--limit model-seconds`` (:func:`onnx_flow.processes.child.bounded`): a model that
hangs, crashes the interpreter or exhausts memory costs its own entry, never the run.
This module holds the audit's part only: what the server imports before it forks
(:data:`ON_DEMAND`), the request (a model, its options, the working folder), and the
entry of a model whose process died.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator, Mapping
from functools import partial

from onnx_flow.errors import AuditError, first_line
from onnx_flow.frontend.fallback import symbolic_inference
from onnx_flow.options import Options
from onnx_flow.pipeline import run
from onnx_flow.processes import child
from onnx_flow.processes.server import Server, Service, answered
from onnx_flow.report import Failure, Result

__all__ = ["ON_DEMAND", "SERVICE", "audit", "audit_apart", "audit_one", "sandbox"]


def audit_one(model: str, options: Options) -> Result:
    """The model's report, or why it could not be audited (never an exception)."""
    try:
        return run(model, options)
    except AuditError as error:
        return Failure(model, first_line(error))
    except MemoryError:
        return Failure(model, f"{model}: out of memory")
    except Exception as error:  # a bug must still end in one line, never a traceback
        return Failure(
            model, first_line(f"{model}: internal error: {type(error).__name__}: {error}")
        )


def sandbox() -> Server:
    """A server that audits the models it is sent (:func:`audit`), each in a child."""
    return Server(SERVICE)


def audit(server: Server, model: str, options: Options, folder: str) -> Result:
    """The model's report from ``server``, or why it was not audited: its path is read
    from ``folder`` (the working folder of the command that named it)."""
    return _received(model, server.ask((model, options, folder)))


def audit_apart(
    models: Iterable[str], options: Mapping[str, Options], jobs: int
) -> Iterator[tuple[str, Result]]:
    """Each model with its result, audited by ``jobs`` sandboxes, as they finish."""
    folder = os.getcwd()
    requests = ((model, (model, options[model], folder)) for model in models)
    for model, reply in answered(SERVICE, requests, jobs):
        yield model, _received(model, reply)


def _received(model: str, reply: Result | None) -> Result:
    """The sandbox's reply, or the entry of a model whose process died."""
    return reply if reply is not None else Failure(model, f"{model}: the process auditing it died")


def _bounded(request: tuple[str, Options, str]) -> Result:
    """In the server: the model audited in a forked child within its limits."""
    model, options, folder = request
    limits = options.limits
    try:
        return child.bounded(
            partial(_audit_from, folder, model, options),
            seconds=limits.model_seconds,
            memory=limits.model_memory,
            what=f"{model}: the audit",
        )
    except child.Overrun as error:
        return Failure(model, first_line(f"{error} (--limit model-seconds=N, model-memory=BYTES)"))


def _audit_from(folder: str, model: str, options: Options) -> Result:
    """In the child: the model audited with ``folder`` as the working folder."""
    try:
        os.chdir(folder)
    except OSError as error:
        return Failure(model, f"{model}: working folder {folder}: {error.strerror}")
    return audit_one(model, options)


#: The modules the audit imports only when a model needs them (networkx for a core the
#: reduction leaves, onnx's reference evaluator to fold, onnxruntime to run a model):
#: the server imports them once, so that each child does not.
ON_DEMAND = ("networkx.algorithms.flow", "onnx.reference", "onnxruntime")


def _preload() -> None:
    """In the server, before any fork: what the audits load on demand."""
    for name in ON_DEMAND:
        importlib.import_module(name)
    symbolic_inference()  # cached: the children inherit it


#: The sandbox's service, by the name a new Python finds it under.
SERVICE = f"{__name__}:SANDBOX"

SANDBOX = Service(preload=_preload, answer=_bounded)
"""What a sandbox does: preload the audit, then audit each model sent."""
