"""The package's shape: stages import only upstream, and each library stays in its stage.

Imports are read from the source (``ast``), at any depth: an import inside a function
counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

import onnx_flow
from onnx_flow.render import RENDERERS, Format

PACKAGE = Path(onnx_flow.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """The modules that module ``name`` imports, anywhere in its source; ``from a import
    b`` names ``a.b`` when that is a module of the package, else ``a``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return found


IMPORTS = {name: _imports(name) for name in MODULES}


def _importers(library: str) -> set[str]:
    return {
        name
        for name, imported in IMPORTS.items()
        if any(m == library or m.startswith(library + ".") for m in imported)
    }


def test_no_import_cycle() -> None:
    graph = nx.DiGraph()
    graph.add_nodes_from(MODULES)
    graph.add_edges_from(
        (name, imported)
        for name, found in IMPORTS.items()
        for imported in found
        if imported in MODULES and imported != name
    )
    assert list(nx.simple_cycles(graph)) == []


def test_only_the_frontend_imports_onnx_and_onnxruntime() -> None:
    for library in ("onnx", "onnxruntime"):
        outside = {m for m in _importers(library) if not m.startswith("onnx_flow.frontend")}
        assert outside == set(), library


def test_only_the_flow_and_the_networkx_view_import_networkx() -> None:
    outside = {
        m
        for m in _importers("networkx")
        if not m.startswith("onnx_flow.flow") and m != "onnx_flow.dataflow"
    }
    assert outside == set()


def test_the_report_and_the_renderers_import_no_pipeline_stage() -> None:
    stages = ("frontend", "measure", "flow", "judge", "cli", "pipeline", "options")
    for name in ("onnx_flow.report", *(m for m in MODULES if m.startswith("onnx_flow.render"))):
        reached = {m for m in IMPORTS[name] if m.startswith("onnx_flow.")}
        assert not {m for m in reached if m.split(".")[1] in stages}, name


def test_the_processes_package_imports_no_stage() -> None:
    stages = ("frontend", "measure", "flow", "judge", "cli", "pipeline", "options", "report")
    for name in (m for m in MODULES if m.startswith("onnx_flow.processes")):
        reached = {m for m in IMPORTS[name] if m.startswith("onnx_flow.")}
        assert not {m for m in reached if m.split(".")[1] in stages}, name


#: What starts a process or limits one: modules, and functions of ``os`` and
#: ``threading`` (whether forking is safe is decided in one place).
_PROCESS_MODULES = {
    "multiprocessing",
    "subprocess",
    "resource",
    "pty",
    "concurrent.futures.process",
}
_PROCESS_FUNCTIONS = {
    "os": {"fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "popen", "register_at_fork"},
    "threading": {"active_count"},
}


def _process_calls(name: str) -> set[str]:
    """What module ``name`` uses of :data:`_PROCESS_MODULES` and
    :data:`_PROCESS_FUNCTIONS` (``os.exec*`` and ``os.spawn*`` included)."""
    found = {
        m for m in IMPORTS[name] if any(m == p or m.startswith(p + ".") for p in _PROCESS_MODULES)
    }
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, used = node.value.id, node.attr
        elif isinstance(node, ast.ImportFrom) and node.module in _PROCESS_FUNCTIONS:
            owner, used = node.module, ",".join(alias.name for alias in node.names)
        else:
            continue
        for one in used.split(","):
            spawns = owner == "os" and one.startswith(("exec", "spawn"))
            if one in _PROCESS_FUNCTIONS.get(owner, ()) or spawns:
                found.add(f"{owner}.{one}")
    return found


def test_only_the_processes_package_starts_or_limits_processes() -> None:
    users = {name: used for name in MODULES if (used := _process_calls(name))}
    assert users, "the walk finds them"
    outside = {
        name: used for name, used in users.items() if not name.startswith("onnx_flow.processes")
    }
    assert outside == {}


def test_at_most_twelve_modules_at_the_package_root() -> None:
    root = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(root) <= 12, root


_BLOCKED = """
import importlib.abc, sys

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"onnx", "onnxruntime", "networkx", "torch"}:
            raise ImportError(f"{name} is unavailable")
        return None

sys.meta_path.insert(0, Blocked())
"""


def test_the_renderers_import_without_onnx_onnxruntime_or_networkx() -> None:
    """Render a report in a process where those libraries cannot be imported."""
    renderers = ", ".join(f"onnx_flow.render.{module}" for module in RENDERERS.values())
    code = _BLOCKED + (
        f"import onnx_flow, onnx_flow.report, {renderers}\n"
        "from onnx_flow.render import Format, render\n"
        "from onnx_flow.report import Failure\n"
        "for format in Format:\n"
        "    render([Failure('m.onnx', 'why')], format)\n"
        "print('rendered')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "rendered\n"


@pytest.mark.parametrize("format", list(Format))
def test_every_format_has_a_renderer(format: Format) -> None:
    module = __import__(f"onnx_flow.render.{RENDERERS[format]}", fromlist=["render"])
    assert callable(module.render)
    assert set(RENDERERS) == set(Format)


def test_the_sandbox_preloads_what_the_stages_import_on_demand() -> None:
    """Each import inside a function of the audit's stages is of a module the sandbox
    server imports before it forks (else every model's child pays for it again)."""
    from onnx_flow.cli.sandbox import ON_DEMAND

    package = Path(onnx_flow.__file__).parent
    stages = [package / "pipeline.py"] + [
        path
        for stage in ("frontend", "flow", "measure", "judge")
        for path in sorted((package / stage).glob("*.py"))
    ]
    on_demand: set[str] = set()
    for path in stages:
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(function):
                    if isinstance(node, ast.Import):
                        on_demand.update(alias.name for alias in node.names)
                    elif isinstance(node, ast.ImportFrom) and node.module:
                        on_demand.add(node.module)
    assert on_demand  # the walk finds them
    foreign = {name for name in on_demand if not name.startswith("onnx_flow")}
    uncovered = {
        name
        for name in foreign
        if not any(loaded == name or loaded.startswith(name + ".") for loaded in ON_DEMAND)
    }
    assert not uncovered
