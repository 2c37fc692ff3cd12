"""``--resume``: a JSON Lines file's finished models are not audited again, as long as
their files and the options are the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.onnx_builders import external_squeeze_mlp, squeeze_mlp
from tests.runner import SHIPPED, run
from tests.sweep import backend_files

# Several models and JSON Lines files, each run a process of its own: seconds each.
pytestmark = pytest.mark.slow


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_resume_audits_exactly_the_removed_lines(tmp_path: Path) -> None:
    folder = backend_files(tmp_path / "models", 100)
    output = tmp_path / "audit.jsonl"
    run("audit", folder, "--format", "jsonl", "--output", output, "--jobs", "2")
    lines = _lines(output)
    assert len(lines) == 100
    removed = [line for index, line in enumerate(lines) if index % 5 == 2]
    kept = [line for line in lines if line not in removed]
    output.write_bytes(b"".join(kept))

    resumed = run("audit", folder, "--format", "jsonl", "--output", output, "--resume")
    assert f"--resume: 80 of 100 models already in {output}\n" in resumed.stderr
    after = _lines(output)
    assert after[:80] == kept  # byte for byte
    assert sorted(after[80:]) == sorted(removed)  # the 20, audited again, and no other
    # One line of totals over the whole file, not a line per model.
    reports = [json.loads(line) for line in after if b'"error"' not in line]
    assert (len(reports), any(report["bottleneck"] for report in reports)) == (100, False)
    assert resumed.stdout == f"100 models audited, no bottleneck (report in {output})\n"


def test_a_changed_file_or_option_is_audited_again(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(SHIPPED, folder / "a.onnx")
    shutil.copy(SHIPPED, folder / "b.onnx")
    output = tmp_path / "audit.jsonl"
    command = ["audit", folder, "--format", "jsonl", "--output", output, "--resume"]
    assert run(*command).returncode == 1
    onnx.save(squeeze_mlp(narrow=8), folder / "b.onnx")

    changed = run(*command)
    assert "--resume: 1 of 2 models" in changed.stderr
    assert changed.returncode == 1  # a.onnx, spared, still has its bottleneck
    entries = [json.loads(line) for line in _lines(output)]
    assert [(Path(e["model"]).name, e["max_flow"]) for e in entries] == [
        ("a.onnx", 4),
        ("b.onnx", 4),
        ("b.onnx", 8),
    ]
    optioned = run(*command, "--threshold", "0.05")
    assert "--resume: 0 of 2 models" in optioned.stderr
    assert optioned.returncode == 0  # 4/64 = 0.0625 passes at 0.05
    assert len(_lines(output)) == 5


def test_weights_count_where_the_measure_reads_them(tmp_path: Path) -> None:
    _, model = external_squeeze_mlp(tmp_path)
    output = tmp_path / "audit.jsonl"
    for measure in ("elements", "rank"):
        command = ["audit", model, "--format", "jsonl", "--output", output, "--resume"]
        run(*command, "--measure", measure)
    weights = tmp_path / "weights.bin"
    values = np.frombuffer(weights.read_bytes(), dtype=np.float32)
    weights.write_bytes((values + 1).tobytes())  # the same structure, other weights
    elements = run(*command, "--measure", "elements")
    rank = run(*command, "--measure", "rank")
    assert "1 of 1 models" in elements.stderr
    assert "0 of 1 models" in rank.stderr
    assert len(_lines(output)) == 3


def test_an_unfinished_last_line_is_cut_off(tmp_path: Path) -> None:
    output = tmp_path / "audit.jsonl"
    command = ["audit", SHIPPED, "--format", "jsonl", "--output", output]
    run(*command)
    whole = output.read_bytes()
    output.write_bytes(whole + whole[:40])  # a stop while the next line was written
    resumed = run(*command, "--resume")
    assert "1 of 1 models" in resumed.stderr
    assert output.read_bytes() == whole


def test_resume_needs_a_jsonl_file(tmp_path: Path) -> None:
    for extra in ([], ["--format", "jsonl"], ["--output", str(tmp_path / "a.json")]):
        result = run("audit", SHIPPED, "--resume", *extra)
        assert result.returncode == 2
        assert result.stderr == (
            "onnx-flow: error: --resume needs --format jsonl and --output FILE:"
            " the lines to resume\n"
        )


def test_a_line_that_is_not_ours_spares_nothing(tmp_path: Path) -> None:
    """A line with the right fingerprint but not the shape of a report (edited by
    hand) is audited again, without a traceback."""
    output = tmp_path / "audit.jsonl"
    command = ["audit", SHIPPED, "--format", "jsonl", "--output", output]
    run(*command)
    entry = json.loads(output.read_text())
    output.write_text("not json\n" + json.dumps({**entry, "dims": 3}) + "\n")
    resumed = run(*command, "--resume")
    assert resumed.returncode == 1, resumed.stderr
    assert "0 of 1 models" in resumed.stderr
    assert json.loads(output.read_text().splitlines()[-1]) == entry


def test_a_file_to_resume_that_is_no_regular_file_is_one_line(tmp_path: Path) -> None:
    """A FIFO must be refused, not waited on for a writer."""
    import os

    fifo = tmp_path / "lines.jsonl"
    os.mkfifo(fifo)
    result = run("audit", SHIPPED, "--format", "jsonl", "--output", fifo, "--resume")
    assert result.returncode == 2
    assert result.stderr == f"onnx-flow: error: --output {fifo}: not a regular file\n"
