"""Audit many models: folders expanded, one failure never stops the others.

A folder stands for every ``.onnx`` file under it, in sorted order. Each model's audit
ends in a :class:`~onnx_flow.report.Report` or a :class:`~onnx_flow.report.Failure`
naming the reason; with ``jobs > 1`` the models are audited in worker processes, and
the results keep the order of the models.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from onnx_flow.errors import AuditError, first_line
from onnx_flow.options import Options
from onnx_flow.pipeline import run
from onnx_flow.report import Failure, Result

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
    options: Options,
    *,
    jobs: int = 1,
    done: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Audit each model; ``done(result)`` is called as each one finishes, in order."""
    results: list[Result] = []
    for result in _results(models, options, jobs):
        results.append(result)
        if done is not None:
            done(result)
    return results


def _results(models: Sequence[str], options: Options, jobs: int) -> Iterator[Result]:
    if jobs > 1 and len(models) > 1:
        yield from _in_workers(models, options, jobs)
        return
    for index, model in enumerate(models):
        if index:
            gc.collect()  # what the previous model left, when collection is off
        yield audit_one(model, options)


def _in_workers(models: Sequence[str], options: Options, jobs: int) -> Iterator[Result]:
    """The models audited by ``jobs`` worker processes, in order.

    A worker that dies (killed, or aborted out of memory) breaks the pool: every model
    it had not finished is audited again alone, in a process of its own, and the one
    that kills that process too gets its error entry. The others lose nothing.
    """
    from concurrent.futures import ProcessPoolExecutor  # only --jobs needs processes
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=min(jobs, len(models))) as pool:
        futures = [pool.submit(audit_one, model, options) for model in models]
        for model, future in zip(models, futures, strict=True):
            try:
                yield future.result()
            except BrokenProcessPool:
                yield _alone(model, options)


def _alone(model: str, options: Options) -> Result:
    """The model audited in a process of its own; an error entry if that process dies."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=1) as pool:
        try:
            return pool.submit(audit_one, model, options).result()
        except BrokenProcessPool:
            return Failure(
                model, f"{model}: the process auditing it died (killed, or out of memory)"
            )


def audit_one(model: str, options: Options) -> Result:
    """The model's report, or why it could not be audited (never an exception)."""
    try:
        return run(model, options)
    except AuditError as error:
        return Failure(model, first_line(error))
    except MemoryError:
        return Failure(model, f"{model}: out of memory")
    except Exception as error:  # a bug must still end in one line, never a traceback
        return Failure(
            model, first_line(f"{model}: internal error: {type(error).__name__}: {error}")
        )
