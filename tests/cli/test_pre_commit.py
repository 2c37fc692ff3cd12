"""The pre-commit hook, run by the real pre-commit on a repository with a model in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runner import REPO, SHIPPED

PRE_COMMIT = [sys.executable, "-m", "pre_commit"]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _try_repo(cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PRE_COMMIT, "try-repo", str(REPO), "onnx-flow", "--all-files"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PRE_COMMIT_HOME": str(home)},
        timeout=900,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_hook_fails_on_a_bottleneck_and_passes_once_it_is_declared(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    _git(project, "init", "-q")
    _git(project, "config", "user.email", "ci@example.com")
    _git(project, "config", "user.name", "ci")
    shutil.copy(SHIPPED, project / "model.onnx")
    (project / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    _git(project, "add", ".")
    home = tmp_path / "pre-commit-home"  # the hook's environment, built once for both runs

    failed = _try_repo(project, home)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "BOTTLENECK" in failed.stdout and "model.onnx" in failed.stdout

    (project / "pyproject.toml").write_text(
        "[project]\nname = 'p'\n\n[tool.onnx-flow]\nallow = ['2']\n"
    )
    _git(project, "add", ".")
    passed = _try_repo(project, home)
    assert passed.returncode == 0, passed.stdout + passed.stderr
