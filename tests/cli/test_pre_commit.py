"""The pre-commit hook, run by the real pre-commit on a repository with a model in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runner import REPO, SHIPPED

# pre-commit builds the hook's environment: a minute.
pytestmark = pytest.mark.slow

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


@pytest.mark.long
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_one_config_gates_a_repository_of_different_models(tmp_path: Path, exported) -> None:
    """A CNN, an autoencoder and GPT-2 under one [tool.onnx-flow]: the dim binds GPT-2
    alone, the latent is allowed for the autoencoder's path alone, and each model is
    judged on its own; the exit code is the worst of them."""
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    _git(project, "init", "-q")
    for name in ("resnet", "autoencoder", "gpt2"):
        shutil.copy(exported(name, "torchscript"), project / "models" / f"{name}.onnx")
    table = "[tool.onnx-flow]\ndims = { sequence = 16 }\n"
    allowed = '\n[tool.onnx-flow.per_path."models/autoencoder.onnx"]\nallow = ["enc.2"]\n'
    home = tmp_path / "pre-commit-home"

    def gate(config: str) -> subprocess.CompletedProcess[str]:
        (project / "pyproject.toml").write_text(f"[project]\nname = 'p'\n\n{config}")
        _git(project, "add", ".")
        return _try_repo(project, home)

    passed = gate(table + allowed)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "BOTTLENECK" not in passed.stdout and "error" not in passed.stdout

    failed = gate(table)  # the latent no longer declared: the autoencoder alone fails
    assert failed.returncode == 1, failed.stdout + failed.stderr
    blocks = failed.stdout.split("\n\n")
    verdicts = {
        name: next(b for b in blocks if f"models/{name}.onnx" in b).splitlines()[1].split()[0]
        for name in ("resnet", "autoencoder", "gpt2")
    }
    assert verdicts == {"resnet": "no", "autoencoder": "BOTTLENECK", "gpt2": "no"}
