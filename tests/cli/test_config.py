"""[tool.onnx-flow] in the nearest pyproject.toml sets defaults; flags win."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import onnx

from tests.onnx_builders import attention_layers
from tests.runner import SHIPPED, invoke


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return invoke("audit", SHIPPED, *args, cwd=cwd)


def _project(tmp_path: Path, table: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        f"[project]\nname = 'p'\n\n[tool.onnx-flow]\n{table}\n"
    )
    nested = tmp_path / "src" / "deep"
    nested.mkdir(parents=True)
    return nested  # the search goes upward from here


def test_config_sets_the_defaults(tmp_path: Path) -> None:
    cwd = _project(tmp_path, 'allow = ["2"]\nformat = "json"\nmeasure = "bits"')
    result = _run(cwd)
    assert result.returncode == 0, result.stderr  # the squeeze is declared
    report = json.loads(result.stdout)
    assert (report["measure"], report["allow"]) == ("bits", ["2"])


def test_flags_win_over_the_config(tmp_path: Path) -> None:
    cwd = _project(tmp_path, 'allow = ["2"]\nformat = "json"\nthreshold = 0.01')
    result = _run(cwd, "--allow", "3", "--format", "markdown", "--threshold", "1")
    assert result.returncode == 1  # layer 3 is not the squeeze
    assert result.stdout.startswith("## onnx-flow")


def test_threshold_from_the_config(tmp_path: Path) -> None:
    # ratio 0.0625: a bottleneck below 1.0, none below 0.05.
    assert _run(_project(tmp_path, "threshold = 0.05")).returncode == 0


def test_a_bad_key_is_an_error_naming_it(tmp_path: Path) -> None:
    result = _run(_project(tmp_path, "alow = ['2']"))
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown key 'alow'" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_bad_value_is_an_error_naming_the_key(tmp_path: Path) -> None:
    result = _run(_project(tmp_path, "dims = { sequence = 'long' }"))
    assert result.returncode == 2 and "dims must be a table of int values" in result.stderr


def test_no_project_no_config(tmp_path: Path) -> None:
    assert _run(tmp_path).returncode == 1


def test_a_tool_table_of_the_wrong_kind_is_no_crash(tmp_path: Path) -> None:
    """``tool = 3`` is another project's business: no [tool.onnx-flow] there."""
    (tmp_path / "pyproject.toml").write_text("tool = 3\n")
    result = _run(tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_a_deeply_nested_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    result = _run(tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "cannot read [tool.onnx-flow]" in result.stderr


def test_limits_from_the_config_and_the_flags(tmp_path: Path) -> None:
    cwd = _project(tmp_path, "limits = { nodes = 3 }")
    result = _run(cwd)
    assert result.returncode == 2
    assert "has 4 nodes, above the limit of 3 (--limit nodes=N)" in result.stderr
    assert _run(cwd, "--limit", "nodes=4").returncode == 1
    unknown = _run(cwd, "--limit", "seconds=4")
    assert unknown.returncode == 2 and "--limit seconds: unknown" in unknown.stderr


def test_ignore_from_the_config_and_the_flags(tmp_path: Path) -> None:
    """One attention without a residual (head 32 over 4 positions: no head-rank
    finding): ignored by the project, it fails nothing; ``--ignore`` replaces the list."""
    path = tmp_path / "attention.onnx"
    onnx.save(attention_layers([1], queries=4, head=32, residual=False), path)
    cwd = _project(tmp_path, 'ignore = ["attention_without_skip"]\nformat = "json"')
    result = invoke("audit", path, "--fail-on", "all", cwd=cwd)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["ignored"], report["findings"]) == (["attention_without_skip"], [])
    flag = invoke("audit", path, "--fail-on", "all", "--ignore", "attention_head_rank", cwd=cwd)
    assert flag.returncode == 1
    assert [f["kind"] for f in json.loads(flag.stdout)["findings"]] == ["attention_without_skip"]
    both = invoke("audit", path, "--fail-on", "attention_without_skip", cwd=cwd)
    assert both.returncode == 2 and len(both.stderr.splitlines()) == 1
    assert "--ignore attention_without_skip" in both.stderr


def test_ignore_must_be_a_list(tmp_path: Path) -> None:
    result = _run(_project(tmp_path, 'ignore = "attention_head_rank"'))
    assert result.returncode == 2 and "ignore must be a list of str values" in result.stderr
