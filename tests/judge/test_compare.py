"""``onnx-flow diff OLD NEW``: exit 1 when the new version squeezes harder or newly."""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from tests.onnx_builders import squeeze_mlp
from tests.runner import run


def _mlp(tmp_path: Path, name: str, narrow: int) -> Path:
    """x (64) -> narrow -> 64."""
    path = tmp_path / f"{name}.onnx"
    onnx.save(squeeze_mlp(narrow=narrow), path)
    return path


def test_a_lower_ratio_is_a_regression(tmp_path: Path) -> None:
    old, new = _mlp(tmp_path, "old", 8), _mlp(tmp_path, "new", 4)
    result = run("diff", old, new, "--format", "json")
    assert result.returncode == 1
    change = json.loads(result.stdout)["outputs"][0]
    assert (change["old"]["ratio"], change["new"]["ratio"]) == (8 / 64, 4 / 64)
    assert change["regressed"] and change["new"]["cut"] == "down (MatMul, 4)"


def test_a_higher_ratio_is_not(tmp_path: Path) -> None:
    old, new = _mlp(tmp_path, "old", 4), _mlp(tmp_path, "new", 8)
    result = run("diff", old, new)
    assert result.returncode == 0 and "better" in result.stdout


def test_a_new_bottleneck_is_a_regression(tmp_path: Path) -> None:
    old, new = _mlp(tmp_path, "old", 64), _mlp(tmp_path, "new", 32)
    assert run("diff", old, new).returncode == 1
    assert run("diff", new, old).returncode == 0


def test_the_same_model_is_no_regression(tmp_path: Path) -> None:
    path = _mlp(tmp_path, "m", 4)
    assert run("diff", path, path).returncode == 0


def test_a_declared_squeeze_passes_in_both(tmp_path: Path) -> None:
    old, new = _mlp(tmp_path, "old", 8), _mlp(tmp_path, "new", 4)
    assert run("diff", old, new, "--allow", "down").returncode == 0


def test_a_model_that_cannot_be_read_is_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"nope")
    result = run("diff", _mlp(tmp_path, "m", 4), broken)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1


def test_markdown_goes_to_the_output_file(tmp_path: Path) -> None:
    old, new = _mlp(tmp_path, "old", 8), _mlp(tmp_path, "new", 4)
    target = tmp_path / "comment.md"
    result = run("diff", old, new, "--format", "markdown", "--output", target)
    assert result.returncode == 1 and result.stdout == ""
    lines = target.read_text().splitlines()
    assert lines[0] == "## onnx-flow diff"
    assert lines[2] == f"{old} -> {new}: **regressed**."
    assert lines[-1] == "| up | 8 of 64 (0.125) | 4 of 64 (0.0625) | worse | down (MatMul, 4) |"
