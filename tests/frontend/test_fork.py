"""Shape inference in a forked child gives what inference in the process gives.

``FORK_NODES`` is lowered to 0 so that small models take the child's path; the same
audit in the process (no fork) is the reference each result is checked against. The
fork helper itself is generic: the last tests drive it with plain functions.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import onnx_flow
from models.reference import MODELS
from onnx_flow.errors import AuditError
from onnx_flow.frontend import external, fork, infer
from tests.conftest import EXPORTERS
from tests.onnx_builders import cycle, external_entry, model, squeeze_mlp


@pytest.fixture
def recorded_forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Graphs of any size may fork; the list collects the children's pids."""
    started: list[int] = []
    fork = os.fork

    def recorded() -> int:
        pid = fork()
        if pid:
            started.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recorded)
    monkeypatch.setattr(infer, "FORK_NODES", 0)
    return started


@pytest.fixture
def forks(recorded_forks: list[int], monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Fork for every graph, whatever threads earlier tests left running (the dynamo
    exporter leaves tqdm's monitor)."""
    monkeypatch.setattr(fork, "_may_fork", lambda: True)
    return recorded_forks


def _in_process(patch: pytest.MonkeyPatch) -> None:
    """Infer in this process from here on: the reference a forked result must match."""
    patch.setattr(infer, "FORK_NODES", 10**9)


def _gone(pid: int) -> bool:
    """Whether the child has been reaped (it is no longer this process's child)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_a_forked_inference_gives_the_same_report(exported, forks, exporter: str) -> None:
    for name, reference in MODELS.items():
        path = exported(name, exporter)
        forked = onnx_flow.audit(path, dims=reference.dims).to_dict()
        with pytest.MonkeyPatch.context() as patch:
            _in_process(patch)
            assert onnx_flow.audit(path, dims=reference.dims).to_dict() == forked, name
    assert len(forks) == len(MODELS) and all(map(_gone, forks))


def _conflict():
    """An Add of widths 3 and 5: strict inference rejects it."""
    return model(
        [helper.make_node("Add", ["x", "y"], ["z"])],
        [("x", TensorProto.FLOAT, [1, 3]), ("y", TensorProto.FLOAT, [1, 5])],
        [("z", TensorProto.FLOAT, [1, 3])],
    )


def test_the_child_hands_on_an_inference_error(forks, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuditError) as forked:
        onnx_flow.audit(_conflict())
    _in_process(monkeypatch)
    with pytest.raises(AuditError) as in_process:
        onnx_flow.audit(_conflict())
    assert str(forked.value) == str(in_process.value)
    assert "shape inference failed" in str(forked.value) and len(forks) == 1


def test_a_child_that_dies_is_an_error(forks, monkeypatch: pytest.MonkeyPatch) -> None:
    # The child runs the patched function: it kills itself where inference would run.
    monkeypatch.setattr(infer, "value_types", lambda _: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(AuditError, match=r"shape inference crashed \(killed by SIGKILL\)"):
        onnx_flow.audit(squeeze_mlp())
    assert len(forks) == 1 and _gone(forks[0])


def test_an_error_in_the_parent_stops_the_child(forks, monkeypatch: pytest.MonkeyPatch) -> None:
    waiting = threading.Event()
    # A child that would never finish: only the parent's error can end it.
    monkeypatch.setattr(infer, "value_types", lambda _: waiting.wait())
    with pytest.raises(AuditError, match="cycle"):
        onnx_flow.audit(cycle())
    assert len(forks) == 1 and _gone(forks[0])


def test_no_fork_beside_another_python_thread(recorded_forks: list[int]) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        report = onnx_flow.audit(squeeze_mlp())
    finally:
        stop.set()
        thread.join()
    assert report.total.max_flow == 4 and recorded_forks == []


def test_no_fork_on_one_cpu(recorded_forks: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    report = onnx_flow.audit(squeeze_mlp())
    assert report.total.max_flow == 4 and recorded_forks == []


def test_a_fork_that_fails_infers_in_process(forks, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> int:
        raise BlockingIOError("fork: Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", fail)
    descriptors = len(os.listdir("/proc/self/fd"))
    assert onnx_flow.audit(squeeze_mlp()).total.max_flow == 4
    assert len(os.listdir("/proc/self/fd")) == descriptors  # the pipe was closed


@pytest.fixture(params=[True, False], ids=["child checks", "caller checks"])
def sent(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether the caller finds the types sent when it asks: if not, it runs the check
    itself rather than wait (the child runs it too, after the types)."""
    monkeypatch.setattr(fork._Child, "_sent", lambda _: request.param)
    return bool(request.param)


@pytest.mark.usefixtures("sent")
def test_a_hostile_reference_is_refused(forks, tmp_path: Path) -> None:
    path = external_entry("location", "../weights.bin")(tmp_path)
    with pytest.raises(AuditError, match="leaves the model's folder"):
        onnx_flow.audit(path)
    assert len(forks) == 1 and _gone(forks[0])


def test_the_caller_checks_only_if_the_types_are_not_sent(forks, sent: bool) -> None:
    ran: list[int] = []  # the child's appends stay in the child
    spare = lambda: ran.append(os.getpid())  # noqa: E731
    with fork.beside(lambda: 1, spare=spare, fork=True, what="work") as pending:
        pending.result()
    assert ran == ([] if sent else [os.getpid()]) and _gone(forks[0])


@pytest.mark.usefixtures("sent")
def test_a_refused_reference_comes_before_an_inference_error(
    forks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which process checks is a matter of timing: the error must not be."""
    path = external_entry("location", "../weights.bin")(tmp_path)
    conflict = onnx.load(path, load_external_data=False)
    conflict.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 5  # 64 is right
    onnx.save(conflict, path)
    with pytest.raises(AuditError, match="leaves the model's folder"):
        onnx_flow.audit(path)
    assert len(forks) == 1
    _in_process(monkeypatch)
    with pytest.raises(AuditError, match="leaves the model's folder"):
        onnx_flow.audit(path)


def test_a_child_that_dies_in_the_check_is_an_error(forks, monkeypatch: pytest.MonkeyPatch) -> None:
    # The types arrive first; the child kills itself where the check would run.
    monkeypatch.setattr(fork._Child, "_sent", lambda _: True)
    parent = os.getpid()
    monkeypatch.setattr(
        external,
        "check",
        lambda *_, **__: os.getpid() != parent and os.kill(os.getpid(), signal.SIGKILL),
    )
    with pytest.raises(AuditError, match=r"shape inference crashed \(killed by SIGKILL\)"):
        onnx_flow.audit(squeeze_mlp())
    assert len(forks) == 1 and _gone(forks[0])


def test_the_child_never_waits_for_the_caller_to_read(
    forks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Types far larger than a pipe's buffer are sent while the caller is still busy:
    the child has run its check before the caller asks for anything."""
    many = {f"t{i}": infer.tensor_type(1, (1, i)) for i in range(20_000)}
    with fork.beside(lambda: many, spare=lambda: None, fork=True, what="work") as pending:
        # The child exits only after sending everything: wait for that, reading nothing.
        exited = False
        for _ in range(200):
            if os.waitid(os.P_PID, forks[0], os.WEXITED | os.WNOHANG | os.WNOWAIT):
                exited = True
                break
            time.sleep(0.05)
        types = pending.result()
    assert exited and types == many
