"""Several models in one call: folders, failures that do not stop the others, --jobs,
--output written atomically."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import onnx
import pytest

from onnx_flow.cli.batch import audit_all
from onnx_flow.options import Options
from onnx_flow.report import Report
from tests.onnx_builders import endless_loop, sequence_model, squeeze_mlp
from tests.runner import SHIPPED, run, started

# Several models, each audited in a process of its own: seconds each.
pytestmark = pytest.mark.slow


def _folder(tmp_path: Path) -> Path:
    """b.onnx (bottleneck), sub/a.onnx (the same), c.onnx (truncated)."""
    folder = tmp_path / "models"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(SHIPPED, folder / "b.onnx")
    onnx.save(squeeze_mlp(), folder / "sub" / "a.onnx")
    (folder / "c.onnx").write_bytes(SHIPPED.read_bytes()[:100])
    return folder


def test_a_folder_is_every_model_under_it_in_sorted_order(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    result = run("audit", folder, "--format", "json")
    assert result.returncode == 2  # c.onnx cannot be read: the worst of 1, 1, 2
    entries = json.loads(result.stdout)
    assert [Path(e["model"]).relative_to(folder).as_posix() for e in entries] == [
        "b.onnx",
        "c.onnx",
        "sub/a.onnx",
    ]
    assert [e.get("bottleneck") for e in entries] == [True, None, True]
    assert "not an ONNX model" in entries[1]["error"]
    assert result.stderr.count("\n") == 1 and "c.onnx" in result.stderr


def test_without_a_failure_the_exit_code_is_the_worst_verdict(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "c.onnx").unlink()
    assert run("audit", folder).returncode == 1


def test_jobs_give_the_same_output(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    one = run("audit", folder, "--format", "json")
    two = run("audit", folder, "--format", "json", "--jobs", "2")
    assert (one.returncode, one.stdout, one.stderr) == (two.returncode, two.stdout, two.stderr)


def test_output_file_holds_what_stdout_would(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    printed = run("audit", SHIPPED, "--format", "json")
    written = run("audit", SHIPPED, "--format", "json", "--output", target)
    assert written.returncode == printed.returncode == 1
    assert target.read_text() == printed.stdout
    # The terminal still hears the verdict, and where the report went.
    assert written.stdout == (
        f"{SHIPPED}: BOTTLENECK  max-flow 4 of 64 (ratio 0.0625) (report in {target})\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "report.json"
    result = run("audit", SHIPPED, "--output", target)
    assert result.returncode == 2 and "--output" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_model_that_fails_alone_writes_no_output(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    result = run("audit", broken, "--output", target)
    assert result.returncode == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.onnx"]


def test_one_dim_binds_the_models_that_have_it(tmp_path: Path) -> None:
    """A repository of a text model and a CNN: --dim sequence=16 binds the text model,
    and the other is audited as it is."""
    onnx.save(sequence_model(), tmp_path / "text.onnx")
    shutil.copy(SHIPPED, tmp_path / "squeeze.onnx")
    result = run("audit", tmp_path, "--dim", "sequence=16", "--format", "json")
    assert result.returncode == 1, result.stderr
    dims = {Path(r["model"]).name: r["dims"] for r in json.loads(result.stdout)}
    assert dims == {"squeeze.onnx": {"batch": 1}, "text.onnx": {"batch": 1, "sequence": 16}}


def test_a_dim_no_model_has_is_one_line_after_the_results(tmp_path: Path) -> None:
    shutil.copy(SHIPPED, tmp_path / "a.onnx")
    shutil.copy(SHIPPED, tmp_path / "b.onnx")
    result = run("audit", tmp_path, "--dim", "sequence=16")
    assert result.returncode == 2 and result.stdout.count("BOTTLENECK") == 2
    assert result.stderr.splitlines() == [
        "onnx-flow: error: --dim sequence=16: none of the 2 models audited has it;"
        f" {tmp_path / 'a.onnx'}: the model has no dim named 'sequence' (its symbolic dims:"
        " batch)"
    ]


def test_one_dim_over_files_from_other_exporters(tmp_path: Path) -> None:
    """silero-vad from its wheel declares sequence_length; the Keras model does not."""
    corpus = Path(__file__).parents[1] / "corpus"
    shutil.copy(corpus / "wheels" / "silero_vad_16k_sequence.onnx", tmp_path)
    shutil.copy(corpus / "exporters" / "keras_mlp.onnx", tmp_path)
    result = run("audit", tmp_path, "--dim", "sequence_length=576", "--format", "json")
    dims = {Path(r["model"]).name: r["dims"] for r in json.loads(result.stdout)}
    assert dims["silero_vad_16k_sequence.onnx"] == {"sequence_length": 576}, result.stderr
    assert "sequence_length" not in dims["keras_mlp.onnx"]


def _descendants(pid: int) -> list[int]:
    """The processes started by ``pid`` (by any of its threads), and theirs; a process
    that ends meanwhile has none."""
    children: list[int] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += map(int, (task / "children").read_text().split())
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def test_a_killed_audit_costs_its_own_model_only(tmp_path: Path) -> None:
    """SIGKILL to every process under the command (as the OOM killer would) while a
    model whose run never ends is audited and the squeeze is done: the endless model
    gets its error line, the run goes on, the squeeze keeps its verdict."""
    endless = endless_loop(tmp_path)
    with started(
        "audit", endless, SHIPPED, "--jobs", "2", "--format", "jsonl",
        "--limit", "run-seconds=600",
    ) as process:  # fmt: skip
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())  # the squeeze
        deadline = time.monotonic() + 30
        while len(processes := _descendants(process.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # the endless model's sandbox may still be starting
        # two sandboxes, the audit of the endless model, and the run it forks
        assert len(processes) >= 3
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr
    assert process.returncode == 2, stderr
    (killed,) = map(json.loads, stdout.splitlines())
    assert (first["model"], first["max_flow"]) == (str(SHIPPED), 4)
    assert (killed["model"], killed["error"]) == (
        str(endless),
        f"{endless}: the process auditing it died",
    )


def test_jsonl_is_one_line_per_model_as_json_gives_them(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    lines = run("audit", folder, "--format", "jsonl").stdout.splitlines()
    listed = json.loads(run("audit", folder, "--format", "json").stdout)
    entries = [json.loads(line) for line in lines]
    assert all(entry.pop("fingerprint").startswith("sha256:") for entry in entries)
    assert entries == listed  # one at a time, they finish in the models' order
    assert len(lines) == 3 and "error" in entries[1]  # c.onnx, cut short


def test_jsonl_output_is_appended_to(tmp_path: Path) -> None:
    report = tmp_path / "corpus.jsonl"
    first = run("audit", SHIPPED, "--format", "jsonl", "--output", report)
    assert first.returncode == 1 and "(report in" in first.stdout
    once = report.read_bytes()
    run("audit", SHIPPED, "--format", "jsonl", "--output", report)
    assert report.read_bytes() == once * 2 and once.count(b"\n") == 1


def test_jsonl_lines_are_written_as_each_model_finishes(tmp_path: Path) -> None:
    """The squeeze's line arrives while the model after it is still audited (its run
    never ends: it is cut at the model's time limit)."""
    endless = endless_loop(tmp_path)
    with started(
        "audit", SHIPPED, endless, "--format", "jsonl",
        "--limit", "run-seconds=600", "--limit", "model-seconds=2",
    ) as process:  # fmt: skip
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        still_running = process.poll() is None
        rest, _ = process.communicate(timeout=120)
    assert first["max_flow"] == 4 and still_running
    assert json.loads(rest)["error"].startswith(f"{endless}: the audit took more than 2 s")


def test_a_terminal_sees_the_count_done_and_failed(tmp_path: Path) -> None:
    """Progress on a terminal (a pseudo-terminal here): the last frame counts all
    three models, one of them failed."""
    folder = _folder(tmp_path)
    terminal, attached = os.openpty()
    with started(
        "audit", folder, stdout=subprocess.DEVNULL, stderr=attached, env={"COLUMNS": "150"}
    ) as process:
        os.close(attached)
        shown = b""
        with contextlib.suppress(OSError):  # EIO: the command closed its end
            while data := os.read(terminal, 65536):
                shown += data
    os.close(terminal)
    assert process.returncode == 2
    frames = shown.decode().split("\r")
    last = next(frame for frame in reversed(frames) if "/3" in frame)
    assert "3/3" in last and "1 failed" in last


def test_sandboxes_report_what_this_process_does_on_files_written_elsewhere() -> None:
    """Every file of tests/corpus (other exporters' and PyPI wheels' models), audited
    in sandboxes (a server that preloaded onnxruntime and its symbolic inference, a
    child per model) and in this process: the same report or the same error."""
    corpus = Path(__file__).parents[1] / "corpus"
    files = sorted(str(path) for path in corpus.rglob("*.onnx"))
    options = dict.fromkeys(files, Options.checked())
    apart = audit_all(files, options, jobs=2, apart=True)
    here = audit_all(files, options, apart=False)
    assert len(files) > 30 and sum(isinstance(r, Report) for r in here) > 20
    assert [r.to_dict() for r in apart] == [r.to_dict() for r in here]
