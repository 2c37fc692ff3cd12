"""The README's opening commands are the ones CI runs; its examples and picture are
what the tool prints and draws."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.runner import run

REPO = Path(__file__).resolve().parents[1]


def test_readme_commands_are_what_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"```sh\n(.+?)\n```", readme)[:2]
    assert commands[0].startswith("pip install . && onnx-flow audit models/")
    assert "pytest" in commands[1]
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert any(line.startswith(command) for line in ci), command


def test_the_readme_energy_example_is_what_the_tool_prints() -> None:
    readme = (REPO / "README.md").read_text()
    (block,) = re.findall(
        r"```\n  \$ (onnx-flow audit .+? --energy .+?)\n(.+?)\n  ```", readme, re.S
    )
    command, shown = block
    result = run(*command.split()[1:])
    printed = [line.rstrip() for line in result.stdout.splitlines()]
    for line in shown.splitlines():
        assert line[2:].rstrip() in printed, line


def test_the_readme_picture_is_what_the_script_draws(tmp_path: Path) -> None:
    """docs/pictures.py draws the README's picture anew: the same models, the same
    verdicts and figures in its titles (the bytes may differ with matplotlib's version)."""
    assert "](docs/profile.svg)" in (REPO / "README.md").read_text()
    drawn = tmp_path / "profile.svg"
    result = subprocess.run(
        [sys.executable, REPO / "docs" / "pictures.py", drawn], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr

    def titles(svg: str) -> list[str]:
        return re.findall(r"<!-- ((?:autoencoder|unet)\.onnx: [^>]*?) -->", svg)

    shipped = titles((REPO / "docs" / "profile.svg").read_text())
    assert shipped == titles(drawn.read_text())
    assert shipped == [
        "autoencoder.onnx: BOTTLENECK, max-flow 32 of 784 (ratio 0.04082)",
        "unet.onnx: no bottleneck, max-flow 3072 of 3072 (ratio 1)",
    ]
