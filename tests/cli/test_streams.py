"""Where the report goes, and what the command does when it cannot go there: one line on
stderr and exit 2 (130 for Ctrl-C), never a traceback; files written whole or not at all,
devices and pipes written, never replaced; an existing file keeps its mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from tests.onnx_builders import endless_loop
from tests.runner import COMMAND, ENV, SHIPPED, run, started

# Each runs onnx-flow in a process of its own, its streams bent: seconds each.
pytestmark = pytest.mark.slow

_COMMAND = [*COMMAND, "audit"]


def _one_line(stderr: str, text: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and text in lines[0], stderr


def test_a_dash_is_standard_output() -> None:
    result = run("audit", SHIPPED, "--format", "json", "--output", "-")
    assert result.returncode == 1
    assert json.loads(result.stdout)["max_flow"] == 4


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("old")
    report.chmod(0o600)
    assert run("audit", SHIPPED, "--format", "json", "--output", report).returncode == 1
    assert json.loads(report.read_text())["max_flow"] == 4
    assert report.stat().st_mode & 0o777 == 0o600


def test_a_pipe_is_written_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = run("audit", SHIPPED, "--format", "json", "--output", fifo)
    reader.join(30)
    assert result.returncode == 1, result.stderr
    assert json.loads(received[0])["max_flow"] == 4
    assert fifo.is_fifo()


def test_a_full_device_is_one_line() -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [*_COMMAND, SHIPPED], stdout=full, stderr=subprocess.PIPE, text=True, env=ENV
        )
    assert result.returncode == 2
    _one_line(result.stderr, "cannot write to standard output: No space left on device")


def test_a_closed_standard_output_is_one_line() -> None:
    result = subprocess.run(
        [*_COMMAND, SHIPPED],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        preexec_fn=lambda: os.close(1),
    )
    assert result.returncode == 2
    _one_line(result.stderr, "standard output is closed: give --output FILE")


def test_a_reader_that_stops_early_is_one_line() -> None:
    """``| head -c 1``: the pipe closes before the report is written."""
    with started("audit", SHIPPED, "--format", "json") as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # nobody reads
        stderr = process.stderr.read()
    assert process.returncode == 2
    _one_line(stderr, "cannot write to standard output: Broken pipe")


def test_ctrl_c_is_one_line_and_130(tmp_path: Path) -> None:
    """Ctrl-C while a model whose run never ends is audited: the squeeze's line before
    it says the audit is under way (not the interpreter still starting)."""
    endless = endless_loop(tmp_path)
    with started(
        "audit", SHIPPED, endless, "--format", "jsonl", "--limit", "run-seconds=600"
    ) as process:
        assert process.stdout is not None
        assert json.loads(process.stdout.readline())["max_flow"] == 4
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    _one_line(stderr, "onnx-flow: interrupted")
