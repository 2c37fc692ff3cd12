"""The documentation is true: README's opening commands are the ones CI runs; the
examples in README.md, CONTRIBUTING.md and docs/ are what the tool prints, the names
their Python uses exist, its picture is what the script draws, and its links lead
somewhere."""

from __future__ import annotations

import ast
import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runner import run

REPO = Path(__file__).resolve().parents[1]

#: Every page of documentation: README first, then CONTRIBUTING and docs/.
PAGES = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]

#: A fenced block, however indented (in a list item), that opens with a command a user
#: types (``$ onnx-flow ...``) and shows what it prints: indent, command, shown lines.
EXAMPLE = re.compile(r"^( *)```(?:text)?\n\1\$ (onnx-flow .+?)\n(.*?)\n\1```", re.S | re.M)

#: A fenced block of Python: its indent and its code.
PYTHON = re.compile(r"^( *)```python\n(.*?)\n\1```", re.S | re.M)

#: A link's or a picture's target, ``[text](target)``.
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _examples() -> list[tuple[str, str, list[str]]]:
    """Each shown command: its page, the command, and the lines shown (unindented)."""
    return [
        (
            path.relative_to(REPO).as_posix(),
            command,
            [line[len(indent) :].rstrip() for line in shown.splitlines()],
        )
        for path in PAGES
        for indent, command, shown in EXAMPLE.findall(path.read_text())
    ]


def _in_order(shown: list[str], printed: list[str]) -> bool:
    """Whether every shown line is printed, in the order shown (rows may be left out)."""
    lines = iter(printed)
    return all(any(line == candidate for candidate in lines) for line in shown)


def _without_code(markdown: str) -> str:
    """The text outside fenced blocks (a ``#`` in a shell block is no heading)."""
    return re.sub(r"^( *)```.*?^\1```", "", markdown, flags=re.S | re.M)


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a page: lower case, punctuation dropped,
    spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", _without_code(path.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_readme_commands_are_what_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"```sh\n(.+?)\n```", readme)[:2]
    assert commands[0].startswith("pip install . && onnx-flow audit models/")
    assert "pytest" in commands[1]
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert any(line.startswith(command) for line in ci), command


def test_the_documentation_shows_its_examples() -> None:
    """The examples below are found where they are: the quick start's squeeze in the
    README, and the energy ranks of a trained detector beside the measures."""
    shown = {(page, command) for page, command, _ in _examples()}
    assert ("README.md", "onnx-flow audit models/squeeze.onnx") in shown
    assert any(page == "docs/measures.md" and "--energy" in command for page, command in shown)


@pytest.mark.slow  # each example a process of its own
@pytest.mark.parametrize(
    ("page", "command", "shown"),
    [pytest.param(*example, id=f"{example[0]}: {example[1]}") for example in _examples()],
)
def test_every_example_is_what_the_tool_prints(page: str, command: str, shown: list[str]) -> None:
    result = run(*shlex.split(command)[1:])
    assert result.returncode in (0, 1), result.stderr
    printed = [line.rstrip() for line in result.stdout.splitlines()]
    assert _in_order(shown, printed), f"{page}: {command}\n{result.stdout}"


def test_the_python_examples_name_what_exists() -> None:
    """Every Python block parses, and what it takes from onnx_flow is there."""
    blocks = [
        (path.name, "\n".join(line[len(indent) :] for line in code.splitlines()))
        for path in PAGES
        for indent, code in PYTHON.findall(path.read_text())
    ]
    assert len(blocks) >= 3
    named = []
    for page, code in blocks:
        for node in ast.walk(ast.parse(code, page)):
            if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "onnx_flow":
                named.append((page, "onnx_flow", node.attr))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("onnx_flow"):
                named.extend((page, node.module or "", alias.name) for alias in node.names)
    assert {name for _, _, name in named} >= {"audit", "audit_module", "assert_no_bottleneck"}
    missing = [
        (page, module, name)
        for page, module, name in named
        if not hasattr(importlib.import_module(module), name)
    ]
    assert missing == []


def test_every_relative_link_leads_to_a_file_and_heading() -> None:
    broken = []
    for path in PAGES:
        for target in LINK.findall(_without_code(path.read_text())):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            name, _, anchor = target.partition("#")
            linked = (path.parent / name).resolve() if name else path
            if not linked.is_file() or not linked.is_relative_to(REPO):
                broken.append(f"{path.name}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{path.name}: {target} (no such heading)")
    assert broken == []


@pytest.mark.slow  # draws the picture with matplotlib: seconds
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
