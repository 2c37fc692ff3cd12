"""Shared fixtures: the reference models, exported once per test run; the children
forked meanwhile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from onnx_flow.processes import child

EXPORTERS = ("torchscript", "dynamo")


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """Return ``export(name, exporter) -> Path``, exporting each model at most once."""
    from models.architectures import ARCHITECTURES, DEEP
    from models.reference import MODELS, export_reference

    references = {**MODELS, **ARCHITECTURES, **DEEP}
    folder = tmp_path_factory.mktemp("reference")
    cache: dict[tuple[str, str], Path] = {}

    def get(name: str, exporter: str) -> Path:
        if (name, exporter) not in cache:
            path = folder / f"{name}-{exporter}.onnx"
            cache[name, exporter] = export_reference(
                references[name], path, dynamo=exporter == "dynamo"
            )
        return cache[name, exporter]

    return get


@pytest.fixture(scope="session")
def decoder(tmp_path_factory: pytest.TempPathFactory):
    """Return ``export(name, layers) -> Path``: a ``gpt2`` or ``llama`` decoder of that
    many layers, d=64, from a transformers config with random weights (TorchScript
    exporter, the faster), exported at most once."""
    from bench.bench_audit import decoder as build

    folder = tmp_path_factory.mktemp("decoders")
    cache: dict[tuple[str, int], Path] = {}

    def get(name: str, layers: int) -> Path:
        if (name, layers) not in cache:
            path = folder / f"{name}-{layers}.onnx"
            cache[name, layers] = build(name, layers, path, dynamo=False, width=64)
        return cache[name, layers]

    return get


@pytest.fixture
def recorded_forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the children forked during the test."""
    started: list[int] = []
    fork = os.fork

    def recorded() -> int:
        pid = fork()
        if pid:
            started.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recorded)
    return started


@pytest.fixture(params=[True, False], ids=["child checks", "caller checks"])
def sent(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether the caller of :func:`~onnx_flow.processes.child.beside` finds the result
    sent when it asks: if not, it runs ``spare`` itself rather than wait (the child
    runs it too, after the result)."""
    monkeypatch.setattr(child._Child, "_sent", lambda _: request.param)
    return bool(request.param)


def gone(pid: int) -> bool:
    """Whether the child has been reaped (it is no longer this process's child)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick",
        action="store_true",
        help="leave out the tests marked slow (exports, browsers, clusters): a quick loop",
    )


#: Fixtures that export models with torch: a test that uses one takes seconds.
_EXPORTING = frozenset({"exported", "decoder"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark slow every test that exports models; ``--quick``: deselect the slow ones."""
    for item in items:
        if _EXPORTING & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if not config.getoption("--quick"):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """Print the backend sweep's counts, when it ran, for comparison between runs."""
    from tests.test_backend_sweep import COUNTS

    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) == "call":
                for name, value in report.user_properties:
                    if name == COUNTS:
                        terminalreporter.write_line(value)
