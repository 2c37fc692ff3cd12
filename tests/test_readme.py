"""The README's opening commands are the ones CI runs."""

from __future__ import annotations

import re
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
