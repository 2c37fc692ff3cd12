"""Audit many models: folders expanded, one failure never stops the others.

A folder stands for every ``.onnx`` file under it, in sorted order. Each model's audit
ends in a :class:`~onnx_flow.report.Report` or a :class:`~onnx_flow.report.Failure`
naming the reason; several models are audited in processes of their own, ``jobs`` at a
time, and the results keep the order of the models.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from onnx_flow.cli import sandbox
from onnx_flow.errors import AuditError
from onnx_flow.options import Options
from onnx_flow.report import Result

__all__ = ["audit_all", "expand"]


def expand(paths: Sequence[str]) -> list[str]:
    """The models named by ``paths``: files as given, folders as their ``.onnx`` files.

    Raises:
        AuditError: a folder holds no ``.onnx`` file.
    """
    models: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(str(p) for p in Path(path).rglob("*.onnx") if p.is_file())
            if not found:
                raise AuditError(f"{path}: no .onnx file in this folder")
            models += found
        else:
            models.append(path)
    return models


def audit_all(
    models: Sequence[str],
    options: Mapping[str, Options],
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    apart: bool | None = None,
    done: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Audit each model with its ``options`` and return the results in the models'
    order; ``done(result)`` is called as each one finishes.

    The models are audited ``apart`` (by default, when there are several), each in a
    process of its own within ``--limit model-seconds`` and ``model-memory``, ``jobs``
    at a time (:mod:`~onnx_flow.cli.sandbox`): one that hangs or crashes costs its own
    entry. Otherwise they are audited here, one after another.
    With a ``scheduler`` address, every model is a task on that Dask cluster
    (:mod:`~onnx_flow.cli.cluster`).

    Raises:
        AuditError: the scheduler cannot be reached.
    """
    finished: dict[str, Result] = {}
    if apart is None:
        apart = len(models) > 1
    for model, result in _results(models, options, jobs, scheduler, apart):
        finished[model] = result
        if done is not None:
            done(result)
    return [finished[model] for model in models]


def _results(
    models: Sequence[str],
    options: Mapping[str, Options],
    jobs: int,
    scheduler: str | None,
    apart: bool,
) -> Iterator[tuple[str, Result]]:
    """Each model with its result, as they finish."""
    if scheduler is not None:
        from onnx_flow.cli.cluster import audit_on

        yield from audit_on(scheduler, models, options)
    elif apart:
        yield from sandbox.audit_apart(dict.fromkeys(models), options, jobs)
    else:
        for model in models:
            yield model, sandbox.audit_one(model, options[model])
