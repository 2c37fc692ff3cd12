"""A preloaded server process that answers requests one at a time (:class:`Server`),
and several of them working through many requests (:func:`answered`).

What the server does is a :class:`Service`, named by its module and attribute
(``package.module:NAME``) so that a new Python can find it: ``preload`` runs once
when the server starts (the imports every request would otherwise pay for), then
``answer`` runs for each request, in the server (which may fork a child per request,
:func:`~onnx_flow.processes.child.bounded`). The server is forked from the caller
where that is safe (:func:`~onnx_flow.processes.child.safe`: no other thread runs
yet), dying with it, else started by ``subprocess`` (never ``multiprocessing``), so
that any process may own one: a thread of a pool, or a Dask worker (a daemonic
process, which ``multiprocessing`` forbids to have children).

Requests and replies are messages of :mod:`~onnx_flow.processes.protocol` on the
server's pipes (standard input and output in a new Python); the server's own prints
go to standard error. Ctrl-C or a closed pipe ends it without a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Protocol, TypeVar

from onnx_flow.processes import child, protocol

__all__ = ["Server", "Service", "answered", "serve"]

_K = TypeVar("_K")


@dataclasses.dataclass(frozen=True)
class Service:
    """What a server does."""

    preload: Callable[[], object]
    """Run once as the server starts: what every answer would otherwise load again."""
    answer: Callable[[Any], Any]
    """The reply to one request; it must not raise (a bug ends the server)."""


class Server:
    """A server process for the :class:`Service` named ``service``; started on first
    use, and again after it dies."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._running: _Running | None = None

    def ask(self, request: object) -> Any:
        """The reply to ``request``, or ``None`` if the server died meanwhile (or could
        not start): it is closed then, and started again on the next request."""
        reply = None
        try:
            _, requests, replies = self.start()
            protocol.send(requests, request)
            reply = protocol.receive(replies)
        except (OSError, pickle.UnpicklingError):  # no process to spare, or it died
            pass
        if reply is None:
            self.close()
        return reply

    def start(self) -> _Running:
        """The server, started if it is not: forked from this process where that is
        safe (it has imported the service's modules already: 1.5 s saved for an
        audit), else in a new Python.

        Raises:
            OSError: no process or pipe to spare.
        """
        if self._running is None:
            if child.safe():
                forked = _Forked(self._service)
                requests = os.fdopen(forked.requests, "wb")
                self._running = (forked, requests, os.fdopen(forked.replies, "rb"))
            else:
                code = f"from onnx_flow.processes.server import serve; serve({self._service!r})"
                started = subprocess.Popen(
                    [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )
                assert started.stdin is not None and started.stdout is not None
                self._running = (started, started.stdin, started.stdout)
        return self._running

    def close(self) -> None:
        """Stop the server and its child, if any."""
        running, self._running = self._running, None
        if running is not None:
            process, requests, replies = running
            process.kill()  # its child dies with it (or ends at its time limit)
            process.wait()
            for stream in (requests, replies):
                with contextlib.suppress(OSError):
                    stream.close()


def answered(
    service: str, requests: Iterable[tuple[_K, object]], jobs: int
) -> Iterator[tuple[_K, Any]]:
    """Each request's key with its reply (``None``: its server died), as they finish,
    from ``jobs`` servers of ``service``.

    Each thread here waits on its own server's pipe; a stop (Ctrl-C, an error in the
    caller) cancels the requests not sent and kills the servers.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed
    from queue import SimpleQueue

    free: SimpleQueue[Server] = SimpleQueue()
    servers = [Server(service) for _ in range(jobs)]
    for server in servers:
        with contextlib.suppress(OSError):  # started on first use, then
            server.start()  # here, while no other thread runs: forked, quicker
        free.put(server)

    def ask(key: _K, request: object) -> tuple[_K, Any]:
        server = free.get()
        try:
            return key, server.ask(request)
        finally:
            free.put(server)

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="onnx-flow")
    try:
        futures = [pool.submit(ask, key, request) for key, request in requests]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        for server in servers:
            server.close()


def serve(
    service: str, requests: IO[bytes] | None = None, replies: IO[bytes] | None = None
) -> None:
    """The server: preload, then answer each request until they end (or the command is
    stopped). Without streams, the requests come on standard input and the replies go
    to standard output; either way, what the answers print goes to standard error."""
    module, _, name = service.partition(":")
    served: Service = getattr(importlib.import_module(module), name)
    served.preload()
    if requests is None or replies is None:
        requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):  # stopped: no traceback
        while (request := protocol.receive(requests)) is not None:
            protocol.send(replies, served.answer(request))


class _Process(Protocol):
    """What :class:`Server` does to a server process (as ``subprocess.Popen`` has it)."""

    def kill(self) -> None: ...

    def wait(self) -> int: ...


#: A running server: its process, and the streams of its requests and of its replies.
_Running = tuple[_Process, IO[bytes], IO[bytes]]


class _Forked:
    """A server forked from this process, that dies with it: :attr:`requests` and
    :attr:`replies` are this side's ends of its pipes."""

    def __init__(self, service: str) -> None:
        requests, self.requests = os.pipe()
        self.replies, replies = os.pipe()
        self.pid = child.forked(
            lambda: serve(service, os.fdopen(requests, "rb"), os.fdopen(replies, "wb")),
            close=(self.requests, self.replies),
        )
        os.close(requests)
        os.close(replies)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> int:
        return os.waitpid(self.pid, 0)[1]
