"""The preloaded server: one preload, then an answer per request, and a new server
after one dies; forked from a process without other threads, else a new Python."""

from __future__ import annotations

import os
import signal

import pytest

from onnx_flow.processes import child, server

_preloaded: list[int] = []


def _preload() -> None:
    _preloaded.append(os.getpid())


def _answer(request: int) -> tuple[int, int, list[int]]:
    """The request doubled, the server's pid, and the pids that preloaded in it."""
    if request < 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return request * 2, os.getpid(), list(_preloaded)


ECHO = server.Service(preload=_preload, answer=_answer)
NAME = f"{__name__}:ECHO"


@pytest.fixture(params=["forked", "new Python"])
def started(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the servers start: forked from here (even beside threads earlier tests left
    running), or in a new Python."""
    monkeypatch.setattr(child, "safe", lambda: request.param == "forked")
    return str(request.param)


def test_a_server_preloads_once_and_answers_each_request(started: str) -> None:
    one = server.Server(NAME)
    try:
        replies = [one.ask(n) for n in (1, 2, 3)]
    finally:
        one.close()
    pid = replies[0][1]
    assert [doubled for doubled, _, _ in replies] == [2, 4, 6]
    assert pid != os.getpid() and all(r[1:] == (pid, [pid]) for r in replies)


def test_a_server_that_dies_answers_none_and_starts_again(started: str) -> None:
    one = server.Server(NAME)
    try:
        first = one.ask(1)
        assert one.ask(-1) is None
        again = one.ask(1)
    finally:
        one.close()
    assert first[0] == again[0] == 2 and first[1] != again[1]


def test_servers_answer_every_request_by_its_key(started: str) -> None:
    requests = [(f"r{n}", -1 if n == 3 else n) for n in range(8)]
    answered = dict(server.answered(NAME, requests, jobs=2))
    assert {key: reply and reply[0] for key, reply in answered.items()} == {
        f"r{n}": None if n == 3 else 2 * n for n in range(8)
    }
