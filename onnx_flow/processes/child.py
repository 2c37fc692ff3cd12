"""Forked children: one that dies with its parent (:func:`forked`), one bounded in time
and memory (:func:`bounded`), and one that works beside the caller (:func:`beside`).

Work that holds the GIL for its whole run (a C++ library's) cannot overlap the
caller's Python work in a thread; in a forked child it can. :func:`beside` starts the
work in a child and gives a :class:`Pending` whose :meth:`~Pending.result` waits for
it. A second, shorter function (``spare``) runs where a process would otherwise wait:
in the caller if the result is not ready when it asks, else in the child once it has
sent the result. Errors keep one order whichever process runs what: the caller's own
(raised inside the block), then ``spare``'s, then the work's. :func:`bounded` runs
work that may hang or exhaust memory: a child with an address-space limit, killed at
a time limit.

Forking is done on Linux, in a process that runs no other Python thread (:func:`safe`):
a lock another thread held at the fork would stay held in the child. Native threads
that wait idle are no such risk, as the child runs nothing but the given functions and
pickle (numpy's OpenBLAS starts its workers on import, and restarts them after a
fork). Elsewhere, or when forking fails, the work runs in the caller. Results come
back through a :class:`~onnx_flow.processes.protocol.Spool`. This module knows nothing
of what the functions do.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import select
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, Generic, TypeVar

from onnx_flow.errors import AuditError
from onnx_flow.processes.protocol import Ended, Spool

__all__ = ["Overrun", "Pending", "beside", "bounded", "forked", "safe"]

_T = TypeVar("_T")


class Pending(Generic[_T]):
    """The result of work started by :func:`beside`, computed here when asked for."""

    def __init__(self, work: Callable[[], _T], spare: Callable[[], object] | None) -> None:
        self._work = work
        self._spare = spare

    def result(self) -> _T:
        """Run ``spare``, then the work, and return the work's result."""
        if self._spare is not None:
            self._spare()
        return self._work()

    def finish(self) -> None:
        """Raise what is still to be raised once the block ends (nothing, here)."""

    def stop(self) -> None:
        """Release what the work holds (nothing, here)."""


@contextlib.contextmanager
def beside(
    work: Callable[[], _T],
    *,
    spare: Callable[[], object] | None = None,
    fork: bool,
    what: str,
) -> Iterator[Pending[_T]]:
    """Start ``work`` in a forked child (when ``fork`` and forking is safe here).

    Args:
        work: the function to run; its result (or its exception) must pickle.
        spare: a function that runs where a process would otherwise wait, before
            anything after the block may depend on it; it only raises or returns.
        fork: whether the work is worth a child process.
        what: the work's name in the error when the child dies (``shape inference``).

    Leaving the block stops a child that is still running; leaving it normally
    raises ``spare``'s error if the child ran it.
    """
    pending: Pending[_T] = Pending(work, spare)
    if fork and _may_fork():
        with contextlib.suppress(OSError):  # no process or pipe to spare: work here
            pending = _Child(work, spare, what)
    try:
        yield pending
        pending.finish()
    finally:
        pending.stop()


class Overrun(AuditError):
    """Work run by :func:`bounded` took too long, or its process died."""


def bounded(work: Callable[[], _T], *, seconds: float, memory: int, what: str) -> _T:
    """Run ``work`` in a forked child with ``memory`` bytes of address space, and wait
    at most ``seconds`` for its result: a hang or a crash there costs this call only.
    Where forking is not safe (another Python thread, not Linux), it runs here.

    Raises:
        Overrun: it took longer (the child is killed), or its process died.
        Exception: what ``work`` raised.
    """
    if not safe():
        return work()
    try:
        child: _Child[_T] = _Child(work, None, what, memory=memory)
    except OSError:  # no process or pipe to spare: work here
        return work()
    try:
        if not select.select([child.pipe], [], [], seconds)[0]:
            raise Overrun(f"{what} took more than {seconds:g} s")
        try:
            return child.result()
        except AuditError as error:
            if child.died:
                raise Overrun(str(error)) from None
            raise
    finally:
        child.stop()


def safe() -> bool:
    """Whether this process can fork safely: Linux, and no other Python thread."""
    return sys.platform == "linux" and threading.active_count() == 1


def _may_fork() -> bool:
    """Whether this process can fork safely and gain by it: a second CPU to run on (on
    one, the child's work only adds the transfer: measured 5.82 s instead of 6.12 s on
    a 200,000-node graph)."""
    return safe() and len(os.sched_getaffinity(0)) > 1


def forked(run: Callable[[], object], *, close: tuple[int, ...] = ()) -> int:
    """Fork a child that dies with this process, closes the descriptors ``close``
    (this side's ends of its pipes), calls ``run`` and exits: 0 if it returned, 1 if it
    raised. The child never returns into the caller's code; its pid is returned here.

    Raises:
        OSError: no process to spare.
    """
    parent = os.getpid()
    with warnings.catch_warnings():
        # Python 3.12+ warns of any other thread; the module docstring says why the
        # idle native ones are no risk here.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _die_with(parent)
            for descriptor in close:
                os.close(descriptor)
            run()
            code = 0
        finally:
            os._exit(code)  # no atexit handlers, no flushing of buffers the parent owns
    return pid


class _Child(Pending[_T]):
    """A forked process that runs the work, sends its result, then runs ``spare``
    (which the caller runs itself if it asks for the result before it is sent).

    Its messages (the result, then ``spare``'s error or ``None``) come through a
    :class:`~onnx_flow.processes.protocol.Spool`.
    """

    def __init__(
        self,
        work: Callable[[], _T],
        spare: Callable[[], object] | None,
        what: str,
        *,
        memory: int | None = None,
    ) -> None:
        super().__init__(work, spare)
        self._what = what
        self._spool = spool = Spool()
        try:
            pid = forked(partial(_serve, work, spare, spool, memory), close=(spool.pipe,))
        except OSError:
            spool.close()
            raise
        spool.close_writing()
        self._pid = pid
        self.pipe = spool.pipe
        """Readable once the child has sent its result, or ended."""
        self.died = False
        """Whether the child ended without sending its result."""
        self._status: int | None = None  # the wait status, once reaped
        self._received = False  # whether the result was received

    def result(self) -> _T:
        if self._spare is not None and not self._sent():
            # Still working: run spare here rather than wait (the child runs it too).
            self._spare()
            self._spare = None
        kind, value = self._receive()
        self._received = True
        if kind == "error":
            raise value
        result: _T = value
        return result

    def finish(self) -> None:
        """Unless ``spare`` ran here: wait for its outcome, reap the child, and raise
        its error."""
        if not self._received:
            self.result()
        if self._spare is None:
            return
        _, error = self._receive()
        self._reap()
        if error is not None:
            raise error

    def stop(self) -> None:
        """Kill the child unless it was reaped, and close the pipe and the file."""
        if self._status is None:
            os.kill(self._pid, signal.SIGKILL)
            self._reap()
        self._spool.close()

    def _sent(self) -> bool:
        """Whether the child has announced its first message (or ended)."""
        return bool(select.select([self.pipe], [], [], 0)[0])

    def _receive(self) -> tuple[str, Any]:
        """The child's next message; its end without one is an error."""
        try:
            message: tuple[str, Any] = self._spool.receive()
        except Ended:
            self.died = True
            raise AuditError(f"{self._what} crashed ({_ended(self._reap())})") from None
        return message

    def _reap(self) -> int:
        _, self._status = os.waitpid(self._pid, 0)
        return self._status


def _serve(
    work: Callable[[], object],
    spare: Callable[[], object] | None,
    out: Spool,
    memory: int | None,
) -> None:
    """In the child: limit its address space to ``memory`` bytes (if given), run the
    work, send its result, run ``spare``, and send its error."""
    try:
        if memory is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard != resource.RLIM_INFINITY:
                memory = min(memory, hard)  # a limit can be lowered, never raised
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        result = work()
    except Exception as error:
        out.send(("error", _error_of(spare) or error))  # spare's error comes first
    else:
        out.send(("result", result))
        out.send(("spared", _error_of(spare)))


def _die_with(parent: int) -> None:
    """In a forked child (Linux): be killed when ``parent`` ends, killed at a time limit
    included, so that no process the work started (an onnxruntime run) outlives it."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the request took effect
        os._exit(1)


#: prctl's option that sends the child a signal when its parent ends (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


def _error_of(spare: Callable[[], object] | None) -> Exception | None:
    """What ``spare`` raised, or ``None``."""
    try:
        if spare is not None:
            spare()
    except Exception as error:
        return error
    return None


def _ended(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:  # a signal without a name (a real-time one)
        return f"killed by signal {-code}"
