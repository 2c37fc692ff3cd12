"""Forked children: work beside the caller, bounded work, and their end with the parent.

The children here run plain functions; ``tests/frontend/test_fork.py`` checks shape
inference run beside the pipeline.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from onnx_flow.errors import AuditError
from onnx_flow.processes import child
from tests.conftest import gone


@pytest.fixture
def forks(recorded_forks: list[int], monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Fork whatever threads earlier tests left running, and on one CPU; the list
    collects the children's pids."""
    monkeypatch.setattr(child, "safe", lambda: True)
    monkeypatch.setattr(child, "_may_fork", lambda: True)
    return recorded_forks


def test_the_caller_runs_spare_only_if_the_result_is_not_sent(forks, sent: bool) -> None:
    ran: list[int] = []  # the child's appends stay in the child
    spare = lambda: ran.append(os.getpid())  # noqa: E731
    with child.beside(lambda: 1, spare=spare, fork=True, what="work") as pending:
        pending.result()
    assert ran == ([] if sent else [os.getpid()]) and gone(forks[0])


def test_the_child_never_waits_for_the_caller_to_read(forks) -> None:
    """A result far larger than a pipe's buffer is sent while the caller is still busy:
    the child has run ``spare`` and exited before the caller asks for anything."""
    many = {f"t{i}": (1, (1, i)) for i in range(20_000)}
    with child.beside(lambda: many, spare=lambda: None, fork=True, what="work") as pending:
        # The child exits only after sending everything: wait for that, reading nothing.
        exited = False
        for _ in range(200):
            if os.waitid(os.P_PID, forks[0], os.WEXITED | os.WNOHANG | os.WNOWAIT):
                exited = True
                break
            time.sleep(0.05)
        result = pending.result()
    assert exited and result == many


def test_bounded_work_runs_in_a_child(forks: list[int]) -> None:
    here = os.getpid()
    assert child.bounded(os.getpid, seconds=30, memory=2**34, what="work") != here
    assert len(forks) == 1 and gone(forks[0])


def test_bounded_work_that_takes_too_long_is_killed(forks: list[int]) -> None:
    started = time.monotonic()
    with pytest.raises(child.Overrun, match=r"^the sleep took more than 0\.5 s$"):
        child.bounded(lambda: time.sleep(60), seconds=0.5, memory=2**34, what="the sleep")
    assert time.monotonic() - started < 10 and gone(forks[0])


@pytest.mark.usefixtures("forks")
def test_bounded_work_has_its_memory_limit() -> None:
    """512 MiB asked for within 256 MiB of address space: MemoryError, from the child
    (this process has no such limit: the same allocation succeeds here)."""
    with pytest.raises(MemoryError):
        child.bounded(lambda: bytearray(2**29), seconds=30, memory=2**28, what="work")
    assert len(bytearray(2**29)) == 2**29


@pytest.mark.usefixtures("forks")
def test_bounded_work_that_dies_is_an_overrun() -> None:
    with pytest.raises(child.Overrun, match=r"^work crashed \(killed by SIGKILL\)$"):
        child.bounded(
            lambda: os.kill(os.getpid(), signal.SIGKILL), seconds=30, memory=2**34, what="work"
        )


@pytest.mark.usefixtures("forks")
def test_bounded_work_hands_on_its_error() -> None:
    def fail() -> None:
        raise AuditError("model.onnx: no graph")

    with pytest.raises(AuditError, match=r"^model\.onnx: no graph$") as raised:
        child.bounded(fail, seconds=30, memory=2**34, what="work")
    assert not isinstance(raised.value, child.Overrun)


def test_bounded_work_beside_another_thread_runs_here(recorded_forks: list[int]) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        pid = child.bounded(os.getpid, seconds=30, memory=2**34, what="work")
    finally:
        stop.set()
        thread.join()
    assert pid == os.getpid() and recorded_forks == []


def test_a_child_dies_with_its_parent() -> None:
    """A parent forks a child that would sleep for a minute, then is killed: the child
    ends too (its pid is read from a pipe; it is no process of this one's to reap)."""
    reading, writing = os.pipe()

    def parent() -> None:
        grandchild = child.forked(lambda: time.sleep(60))
        os.write(writing, grandchild.to_bytes(4, "little"))
        time.sleep(60)

    pid = child.forked(parent, close=(reading,))
    os.close(writing)
    grandchild = int.from_bytes(os.read(reading, 4), "little")
    os.close(reading)
    assert _alive(grandchild)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
