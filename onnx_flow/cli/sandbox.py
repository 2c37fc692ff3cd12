"""Audit one model: here (:func:`audit_one`), or in a process of its own, cut at the
model's limits (:class:`Sandbox`).

A :class:`Sandbox` is a server process (:func:`serve`, in a Python of its own) that has
imported the audit once and runs no other thread. For each model it is sent, it forks
a child with ``--limit model-memory`` bytes of address space, and kills it after
``--limit model-seconds``: a model that hangs, crashes the interpreter or exhausts
memory costs its own entry, never the run. The server is forked from the command
where that is safe (no other thread runs yet), else started by ``subprocess`` (never
``multiprocessing``), so that any process may own one: a thread of ``--jobs``, or a
Dask worker (a daemonic process, which ``multiprocessing`` forbids to have children).

Requests and replies are pickles on the server's standard input and output, each
after its length; the server's own prints go to standard error.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import signal
import subprocess
import sys
from functools import partial
from typing import IO, Any, Protocol

from onnx_flow.errors import AuditError, first_line
from onnx_flow.frontend import fork
from onnx_flow.frontend.fallback import symbolic_inference
from onnx_flow.options import Options
from onnx_flow.pipeline import run
from onnx_flow.report import Failure, Result

__all__ = ["Sandbox", "audit_one", "serve"]

#: Bytes that give a message's length before it.
_LENGTH = 8


class Sandbox:
    """A server that audits the models it is sent, each in a forked child; started on
    first use, and again after it dies."""

    def __init__(self) -> None:
        self._server: _Server | None = None

    def audit(self, model: str, options: Options, folder: str) -> Result:
        """The model's report, or why it was not audited: its path is read from
        ``folder`` (the working folder of the command that named it)."""
        result: Result | None = None
        try:
            _, requests, replies = self.start()
            _send(requests, (model, options, folder))
            result = _receive(replies)
        except (OSError, pickle.UnpicklingError):  # no process to spare, or it died
            pass
        if result is None:
            self.close()
            return Failure(model, f"{model}: the process auditing it died")
        return result

    def start(self) -> _Server:
        """The server, started if it is not: forked from this process where that is
        safe (Linux, no other Python thread: it has imported the audit already, 1.5 s
        saved), else in a new Python."""
        if self._server is None:
            if fork.safe():
                forked = _Forked()
                requests = os.fdopen(forked.requests, "wb")
                self._server = (forked, requests, os.fdopen(forked.replies, "rb"))
            else:
                started = subprocess.Popen(
                    [sys.executable, "-c", "from onnx_flow.cli.sandbox import serve; serve()"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
                assert started.stdin is not None and started.stdout is not None
                self._server = (started, started.stdin, started.stdout)
        return self._server

    def close(self) -> None:
        """Stop the server and its child, if any."""
        server, self._server = self._server, None
        if server is not None:
            process, requests, replies = server
            process.kill()  # its child dies with it (or ends at its time limit)
            process.wait()
            for stream in (requests, replies):
                with contextlib.suppress(OSError):
                    stream.close()


class _Process(Protocol):
    """What :class:`Sandbox` does to a server process (as ``subprocess.Popen`` has it)."""

    def kill(self) -> None: ...

    def wait(self) -> int: ...


#: A server: its process, and the streams of its requests and of its replies.
_Server = tuple[_Process, IO[bytes], IO[bytes]]


class _Forked:
    """A server forked from this process, that dies with it: :attr:`requests` and
    :attr:`replies` are this side's ends of its pipes."""

    def __init__(self) -> None:
        requests, self.requests = os.pipe()
        self.replies, replies = os.pipe()
        self.pid = fork.forked(
            lambda: serve(os.fdopen(requests, "rb"), os.fdopen(replies, "wb")),
            close=(self.requests, self.replies),
        )
        os.close(requests)
        os.close(replies)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> int:
        return os.waitpid(self.pid, 0)[1]


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


def _send(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(_LENGTH, "little") + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """The next message, or ``None`` at the end of the stream."""
    announced = stream.read(_LENGTH)
    if len(announced) < _LENGTH:
        return None
    length = int.from_bytes(announced, "little")
    data = stream.read(length)
    if len(data) < length:
        return None
    return pickle.loads(data)


def _bounded(model: str, options: Options, folder: str) -> Result:
    """The model audited in a forked child within its limits."""
    limits = options.limits
    try:
        return fork.bounded(
            partial(_audit_from, folder, model, options),
            seconds=limits.model_seconds,
            memory=limits.model_memory,
            what=f"{model}: the audit",
        )
    except fork.Overrun as error:
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


def serve(requests: IO[bytes] | None = None, replies: IO[bytes] | None = None) -> None:
    """The server: import what the audits may need, then answer each request, until
    they end (or the command is stopped). Without streams, the requests come on
    standard input and the replies go to standard output; either way, what the audits
    print goes to standard error."""
    for name in ON_DEMAND:
        importlib.import_module(name)
    symbolic_inference()  # cached: the children inherit it
    if requests is None or replies is None:
        requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):  # stopped: no traceback
        while (request := _receive(requests)) is not None:
            _send(replies, _bounded(*request))
