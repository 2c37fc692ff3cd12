"""``--scheduler``: the audits as tasks on a real Dask cluster, a scheduler and two
worker processes on 127.0.0.1, started here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest
from distributed import Client, LocalCluster

from bench.bench_corpus import local_cluster
from tests.onnx_builders import endless_loop, squeeze_mlp
from tests.runner import deep_model, run, started
from tests.sweep import backend_files

# A scheduler and workers started per test: seconds each.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with local_cluster() as started:
        yield started


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return backend_files(tmp_path_factory.mktemp("corpus") / "models", 100)


def test_the_cluster_gives_the_lines_of_a_serial_run(cluster: LocalCluster, corpus: Path) -> None:
    serial = run("audit", corpus, "--format", "jsonl")
    spread = run("audit", corpus, "--format", "jsonl", "--scheduler", cluster.scheduler_address)
    assert spread.returncode == serial.returncode, spread.stderr
    lines = spread.stdout.splitlines()
    assert len(lines) == 100
    assert sorted(lines) == sorted(serial.stdout.splitlines())
    # The list formats keep the models' order, as serially.
    listed = run("audit", corpus, "--format", "json", "--scheduler", cluster.scheduler_address)
    serial_entries = [json.loads(line) for line in serial.stdout.splitlines()]
    for entry in serial_entries:  # a serial run's lines come in the models' order
        del entry["fingerprint"]
    assert json.loads(listed.stdout) == serial_entries


def test_a_killed_worker_costs_no_line(cluster: LocalCluster, tmp_path: Path) -> None:
    """SIGKILL to a worker once a few lines are written: the scheduler runs its tasks
    on the other worker (and on the one its nanny starts again)."""
    folder = tmp_path / "models"
    folder.mkdir()
    for index in range(24):  # models of about a tenth of a second each
        deep_model(2_000 + index, folder / f"m{index:02}.onnx")
    output = tmp_path / "audit.jsonl"
    with Client(cluster.scheduler_address) as client:
        worker_pid = next(iter(client.run(os.getpid).values()))
    command = ["audit", folder, "--format", "jsonl", "--output", output]
    with started(
        *command, "--scheduler", cluster.scheduler_address, stdout=subprocess.DEVNULL
    ) as process:
        deadline = time.monotonic() + 60
        while _count(output) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        killed_at = _count(output)
        os.kill(worker_pid, signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)
    assert 3 <= killed_at < 24  # the kill came mid-run
    assert process.returncode == 0, stderr
    entries = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(Path(e["model"]).name for e in entries) == [
        f"m{index:02}.onnx" for index in range(24)
    ]
    assert all(e["max_flow"] == 64 for e in entries)


def _count(output: Path) -> int:
    return output.read_bytes().count(b"\n") if output.exists() else 0


def test_a_model_that_hangs_is_cut_at_the_time_limit(cluster: LocalCluster, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    endless = endless_loop(folder)
    onnx.save(squeeze_mlp(), folder / "squeeze.onnx")
    result = run(
        "audit", folder, "--format", "json", "--scheduler", cluster.scheduler_address,
        "--limit", "run-seconds=100", "--limit", "model-seconds=2",
    )  # fmt: skip
    assert result.returncode == 2
    cut, squeeze = json.loads(result.stdout)
    assert cut["error"].startswith(f"{endless}: the audit took more than 2 s")
    assert squeeze["max_flow"] == 4


def test_a_scheduler_out_of_reach_is_one_line(tmp_path: Path) -> None:
    onnx.save(squeeze_mlp(), tmp_path / "a.onnx")
    onnx.save(squeeze_mlp(), tmp_path / "b.onnx")
    result = run(
        "audit", tmp_path, "--scheduler", "tcp://127.0.0.1:9",
        env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("onnx-flow: error: --scheduler tcp://127.0.0.1:9: ")
    assert result.stderr.count("\n") == 1


def test_without_distributed_the_scheduler_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from onnx_flow.cli.main import main

    onnx.save(squeeze_mlp(), tmp_path / "a.onnx")
    onnx.save(squeeze_mlp(), tmp_path / "b.onnx")
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    assert main(["audit", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert capsys.readouterr().err == (
        "onnx-flow: error: --scheduler needs Dask distributed: pip install 'onnx-flow[dask]'\n"
    )
