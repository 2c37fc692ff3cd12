"""Settings shared by several models: each model gets its own answer.

A dim, input or layer a model lacks is left out for it; one given on the command line
that no model of the run has is an error said beside the results, never instead of them.
Project defaults and per-path settings in ``[tool.onnx-flow]`` never refuse a model.
"""

from __future__ import annotations

import json
import shutil
from importlib import import_module
from pathlib import Path

import onnx
import pytest

from onnx_flow.options import SETTINGS, Form
from onnx_flow.pipeline import audit
from tests.onnx_builders import sequence_model
from tests.runner import SHIPPED, invoke, run


def _repository(tmp_path: Path) -> Path:
    """squeeze.onnx (64 -> 4 -> 64: a bottleneck at layer 2) and text.onnx (passes)."""
    shutil.copy(SHIPPED, tmp_path / "squeeze.onnx")
    onnx.save(sequence_model(), tmp_path / "text.onnx")
    return tmp_path


def _project(folder: Path, table: str) -> None:
    (folder / "pyproject.toml").write_text(f"[project]\nname = 'p'\n\n[tool.onnx-flow]\n{table}\n")


@pytest.mark.slow  # several models, each audited in a process of its own
def test_each_setting_serves_the_models_that_have_it(tmp_path: Path) -> None:
    """--allow 2 is the squeeze's layer, --dim sequence=16 the text model's dim: each
    model takes what it has, both are answered, and both pass."""
    folder = _repository(tmp_path)
    result = run("audit", folder, "--allow", "2", "--dim", "sequence=16", "--format", "json")
    assert (result.returncode, result.stderr) == (0, "")
    reports = {Path(r["model"]).name: r for r in json.loads(result.stdout)}
    assert reports["squeeze.onnx"]["allow"] == ["2"]
    assert reports["text.onnx"]["dims"] == {"batch": 1, "sequence": 16}
    unused = {name: [u["option"] for u in r["unused"]] for name, r in reports.items()}
    assert unused == {"squeeze.onnx": ["--dim sequence=16"], "text.onnx": ["--allow 2"]}


@pytest.mark.slow  # several models, each audited in a process of its own
def test_a_setting_no_model_has_is_an_error_beside_the_results(tmp_path: Path) -> None:
    folder = _repository(tmp_path)
    flags = ("--allow", "enc.2", "--dim", "sequence=16", "--dim", "seq=16", "--format", "markdown")
    result = run("audit", folder, *flags)
    assert result.returncode == 2
    assert "squeeze.onnx" in result.stdout and "text.onnx" in result.stdout  # both answered
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("onnx-flow: error: ") for line in lines)
    assert "--dim seq=16: none of the 2 models audited has it" in lines[0]
    assert "no dim named 'seq'" in lines[0]
    assert "--allow enc.2: none of the 2 models audited has it" in lines[1]
    assert "no tensor, node or module" in lines[1]


@pytest.mark.slow  # several models, each audited in a process of its own
def test_a_failed_model_hides_no_other_result(tmp_path: Path) -> None:
    """One model cannot be audited: the other's row is still there, and the --dim it
    alone has is no error (the failed model may have had it too)."""
    folder = _repository(tmp_path)
    (folder / "squeeze.onnx").write_bytes(b"not a model")
    result = run("audit", folder, "--dim", "sequence=16", "--format", "markdown")
    assert result.returncode == 2
    assert "text.onnx | y | 128 | 128 | 1 | ok" in result.stdout
    assert "squeeze.onnx |  |  |  |  | **not audited**" in result.stdout
    (line,) = result.stderr.splitlines()
    assert "squeeze.onnx" in line and "not an ONNX model" in line


def test_one_model_and_a_setting_it_lacks(tmp_path: Path) -> None:
    """One model: its report, then the line that says what it lacks; exit 2."""
    result = invoke("audit", SHIPPED, "--dim", "seq=3", "--format", "json")
    assert result.returncode == 2
    assert json.loads(result.stdout)["max_flow"] == 4
    assert result.stderr.splitlines() == [
        f"onnx-flow: error: {SHIPPED}: --dim seq=3: the model"
        " has no dim named 'seq' (its symbolic dims: batch)"
    ]


def test_project_defaults_never_refuse_a_model(tmp_path: Path) -> None:
    """The README's example defaults, on a repository where one model has neither the
    dim nor the layer: nothing is refused, and the squeeze is allowed."""
    folder = _repository(tmp_path)
    _project(folder, 'allow = ["2"]\ndims = { sequence = 16 }\nformat = "json"')
    for models in (["squeeze.onnx", "text.onnx"], ["text.onnx"], ["squeeze.onnx"]):
        result = invoke("audit", *models, cwd=folder)
        assert (result.returncode, result.stderr) == (0, ""), models


@pytest.mark.slow  # several models, each audited in a process of its own
def test_per_path_settings_apply_to_the_files_they_match(tmp_path: Path) -> None:
    folder = _repository(tmp_path)
    (folder / "models").mkdir()
    shutil.copy(SHIPPED, folder / "models" / "autoencoder.onnx")
    _project(
        folder,
        'format = "json"\nthreshold = 0.5\n\n'
        '[tool.onnx-flow.per_path."models/auto*.onnx"]\nallow = ["2"]\n\n'
        '[tool.onnx-flow.per_path."text.onnx"]\ndims = { sequence = 4 }\nthreshold = 0.9\n',
    )
    result = run("audit", folder, cwd=folder)
    assert result.returncode == 1, result.stderr  # squeeze.onnx: 4 of 64 below 0.5
    reports = {
        Path(r["model"]).relative_to(folder).as_posix(): r for r in json.loads(result.stdout)
    }
    auto, squeeze, text = (
        reports[n] for n in ("models/autoencoder.onnx", "squeeze.onnx", "text.onnx")
    )
    assert (auto["allow"], auto["bottleneck"], auto["threshold"]) == (["2"], False, 0.5)
    assert (squeeze["allow"], squeeze["bottleneck"]) == ([], True)
    assert (text["dims"], text["threshold"]) == ({"batch": 1, "sequence": 4}, 0.9)
    assert text["given"] == ["--dim sequence=4", "--threshold 0.9"]


@pytest.mark.slow  # several models, each audited in a process of its own
def test_a_bad_per_path_setting_is_one_line(tmp_path: Path) -> None:
    folder = _repository(tmp_path)
    _project(folder, '[tool.onnx-flow.per_path."*.onnx"]\nthreshold = 3\n')
    result = run("audit", folder, cwd=folder)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "onnx-flow: error: per_path '*.onnx': --threshold 3: must be a ratio in (0, 1]"
    ]
    _project(folder, '[tool.onnx-flow.per_path."*.onnx"]\nformat = "json"\n')
    unknown = run("audit", folder, cwd=folder)
    assert unknown.returncode == 2 and "unknown key 'format'" in unknown.stderr


def test_every_setting_is_a_flag_a_key_and_a_keyword(tmp_path: Path) -> None:
    """The declaration is the one source: each setting has its flag in the help of the
    commands that take it, is accepted in [tool.onnx-flow] and by audit(), and the
    report echoes it as the command line gives it."""
    helps = {command: invoke(command, "--help").stdout for command in ("audit", "diff")}
    for setting in SETTINGS:
        for command in ("audit", "diff"):
            assert (setting.flag in helps[command]) == (command in setting.commands), setting
    echoed = audit(
        SHIPPED,
        threshold=0.5,
        allow=["2"],
        whole_model=True,
        limits={"nodes": 100},
        input_shapes={"x": [1, 64]},
        ignore=["attention_head_rank"],
    ).given
    assert [text for _, text in echoed] == [
        "--input-shape x=1,64",
        "--threshold 0.5",
        "--allow 2",
        "--whole-model",
        "--ignore attention_head_rank",
        "--limit nodes=100",
    ]
    assert {s.form for s in SETTINGS} == set(Form)


def test_the_limit_help_names_every_budget() -> None:
    help_text = " ".join(invoke("audit", "--help").stdout.split())
    for name in (
        "nodes",
        "sample-bytes",
        "run-seconds",
        "run-memory",
        "model-seconds",
        "model-memory",
    ):
        assert f"{name} (default" in help_text, name


def test_progress_in_a_log_is_a_line_every_few_seconds(capsys) -> None:
    """stderr no terminal (CI): a line once PROGRESS_EVERY seconds have passed since
    the last, none for the last model (the totals follow)."""
    from onnx_flow.report import Failure

    main = import_module("onnx_flow.cli.main")  # the module, not the function it exports

    seconds = iter([0.0, 1.0, main.PROGRESS_EVERY + 1, main.PROGRESS_EVERY + 2, 100.0])
    advance = main._lines(4, clock=lambda: next(seconds))
    for name in ("a.onnx", "sub/b.onnx", "c.onnx", "d.onnx"):
        advance(Failure(name, "refused") if name == "a.onnx" else Failure(name, "x"))
    assert capsys.readouterr().err.splitlines() == [
        f"onnx-flow: 2 of 4 models audited, 2 failed, {main.PROGRESS_EVERY + 1:.0f} s: sub/b.onnx"
    ]
