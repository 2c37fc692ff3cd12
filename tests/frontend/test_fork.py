"""Shape inference in a forked child gives what inference in the process gives.

``FORK_NODES`` is lowered to 0 so that small models take the child's path; the same
audit in the process (no fork) is the reference each result is checked against. The
child itself is generic: ``tests/processes/test_child.py`` drives it with plain
functions.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import onnx_flow
from models.reference import MODELS
from onnx_flow.errors import AuditError
from onnx_flow.frontend import external, inference
from onnx_flow.processes import child
from tests.conftest import EXPORTERS, gone
from tests.onnx_builders import cycle, external_entry, model, squeeze_mlp


@pytest.fixture
def may_fork(recorded_forks: list[int], monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Graphs of any size may fork; the list collects the children's pids."""
    monkeypatch.setattr(inference, "FORK_NODES", 0)
    return recorded_forks


@pytest.fixture
def forks(may_fork: list[int], monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Fork for every graph, whatever threads earlier tests left running (the dynamo
    exporter leaves tqdm's monitor)."""
    monkeypatch.setattr(child, "_may_fork", lambda: True)
    return may_fork


def _in_process(patch: pytest.MonkeyPatch) -> None:
    """Infer in this process from here on: the reference a forked result must match."""
    patch.setattr(inference, "FORK_NODES", 10**9)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_a_forked_inference_gives_the_same_report(exported, forks, exporter: str) -> None:
    for name, reference in MODELS.items():
        path = exported(name, exporter)
        forked = onnx_flow.audit(path, dims=reference.dims).to_dict()
        with pytest.MonkeyPatch.context() as patch:
            _in_process(patch)
            assert onnx_flow.audit(path, dims=reference.dims).to_dict() == forked, name
    assert len(forks) == len(MODELS) and all(map(gone, forks))


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
    monkeypatch.setattr(inference, "value_types", lambda _: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(AuditError, match=r"shape inference crashed \(killed by SIGKILL\)"):
        onnx_flow.audit(squeeze_mlp())
    assert len(forks) == 1 and gone(forks[0])


def test_an_error_in_the_parent_stops_the_child(forks, monkeypatch: pytest.MonkeyPatch) -> None:
    waiting = threading.Event()
    # A child that would never finish: only the parent's error can end it.
    monkeypatch.setattr(inference, "value_types", lambda _: waiting.wait())
    with pytest.raises(AuditError, match="cycle"):
        onnx_flow.audit(cycle())
    assert len(forks) == 1 and gone(forks[0])


def test_no_fork_beside_another_python_thread(may_fork: list[int]) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        report = onnx_flow.audit(squeeze_mlp())
    finally:
        stop.set()
        thread.join()
    assert report.total.max_flow == 4 and may_fork == []


def test_no_fork_on_one_cpu(may_fork: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    report = onnx_flow.audit(squeeze_mlp())
    assert report.total.max_flow == 4 and may_fork == []


def test_a_fork_that_fails_infers_in_process(forks, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> int:
        raise BlockingIOError("fork: Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", fail)
    descriptors = len(os.listdir("/proc/self/fd"))
    assert onnx_flow.audit(squeeze_mlp()).total.max_flow == 4
    assert len(os.listdir("/proc/self/fd")) == descriptors  # the pipe was closed


@pytest.mark.usefixtures("sent")
def test_a_hostile_reference_is_refused(forks, tmp_path: Path) -> None:
    path = external_entry("location", "../weights.bin")(tmp_path)
    with pytest.raises(AuditError, match="leaves the model's folder"):
        onnx_flow.audit(path)
    assert len(forks) == 1 and gone(forks[0])


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
    monkeypatch.setattr(child._Child, "_sent", lambda _: True)
    parent = os.getpid()
    monkeypatch.setattr(
        external,
        "check",
        lambda *_, **__: os.getpid() != parent and os.kill(os.getpid(), signal.SIGKILL),
    )
    with pytest.raises(AuditError, match=r"shape inference crashed \(killed by SIGKILL\)"):
        onnx_flow.audit(squeeze_mlp())
    assert len(forks) == 1 and gone(forks[0])
