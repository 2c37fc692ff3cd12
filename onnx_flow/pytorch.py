"""Audit a PyTorch module directly: export it to ONNX in a temporary folder, audit that.

torch is imported only here, and only when a module is audited; ``pip install
onnx-flow[torch]`` brings it (with onnxscript, which the dynamo exporter needs). The
report's layers carry the module paths the user wrote (``encoder.layer.3``), read from
either exporter's output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from onnx_flow.errors import AuditError, first_line
from onnx_flow.options import Options
from onnx_flow.pipeline import run
from onnx_flow.report import Report

if TYPE_CHECKING:
    import torch

__all__ = [
    "INPUT_DTYPES",
    "audit_module",
    "example_inputs",
    "load_factory",
    "parse_shapes",
    "run_module",
]


def audit_module(
    module: torch.nn.Module,
    example_args: Any,
    *,
    dynamo: bool = True,
    dims: dict[str, int] | None = None,
    **options: Any,
) -> Report:
    """Export ``module`` with ``example_args`` and audit it like :func:`onnx_flow.audit`.

    Args:
        module: the module; it is put in eval mode for the export.
        example_args: one example input tensor, or a tuple of them. Their shapes are
            exported as they are: a batch of N counts N samples (ratios do not change).
        dynamo: the ``torch.export`` exporter (default), or ``False`` for TorchScript.
        dims: as for :func:`onnx_flow.audit`.
        options: ``batch_dim``, ``measure``, ``threshold``, ``allow``, ``inputs``,
            ``fail_on``, ``ignore``, as for :func:`onnx_flow.audit`.

    Returns:
        The report, its model named ``<ClassName>``.

    Raises:
        AuditError: an option is bad, torch is not installed, the export fails, or the
            audit does.
    """
    return run_module(module, example_args, Options.checked(dims=dims, **options), dynamo=dynamo)


def run_module(
    module: torch.nn.Module, example_args: Any, options: Options, *, dynamo: bool = True
) -> Report:
    """:func:`audit_module` with options already checked (the command line's)."""
    try:
        import torch
    except ImportError:
        raise AuditError("audit_module needs torch: pip install 'onnx-flow[torch]'") from None
    name = f"<{type(module).__name__}>"
    args = example_args if isinstance(example_args, tuple) else (example_args,)
    with tempfile.TemporaryDirectory(prefix="onnx-flow-") as folder:
        path = Path(folder) / "module.onnx"
        module.eval()
        try:
            with _quiet_export():
                torch.onnx.export(module, args, str(path), dynamo=dynamo)
        except Exception as error:  # exporters raise many kinds; one line says why
            raise AuditError(f"{name}: the export failed: {_cause(error)}") from None
        try:
            report = run(path, options)
        except AuditError as error:
            raise AuditError(str(error).replace(str(path), name)) from None
    return dataclasses.replace(report, model=name)


def _cause(error: BaseException) -> str:
    """The first line of the innermost error behind ``error`` (torch.export wraps the
    module's own, such as a conv2d given a 2-D input, in pages of advice), without the
    terminal colour codes exporters put in their messages."""
    seen = {id(error)}
    while (inner := error.__cause__ or error.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        error = inner
    return f"{type(error).__name__}: {first_line(_ANSI.sub('', str(error)))}"


#: Terminal control sequences (colours) in exporters' messages.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """No gradients, and none of the exporters' warnings, logs and prints: not even
    what their C++ side writes to the process's stdout (the TorchScript exporter's
    graph dumps), which would corrupt a report printed there."""
    import torch

    log = logging.getLogger("torch")
    level = log.level
    log.setLevel(logging.CRITICAL)
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.no_grad():
                yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        log.setLevel(level)


def load_factory(spec: str) -> Callable[[], Any]:
    """``package.module:factory`` -> the factory (a class or a function).

    Raises:
        AuditError: the module cannot be imported or has no such attribute.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AuditError(f"{spec}: expected package.module:factory")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the working folder's modules, as python -m finds
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as error:
        raise AuditError(f"{spec}: cannot import {module_name}: {error}") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise AuditError(f"{spec}: {module_name} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise AuditError(f"{spec}: {attribute} is not callable")
    return cast(Callable[[], Any], target)


#: The element types an ``audit-module`` input may have (torch's names).
INPUT_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "bool")


def example_inputs(shapes: Sequence[tuple[int, ...]], dtypes: Sequence[str]) -> tuple[Any, ...]:
    """One tensor per shape: random normal floats, or zeros of an integer or bool type
    (index 0 is valid for any embedding table).

    Raises:
        AuditError: neither one dtype for all nor one per shape is given.
    """
    import torch

    if len(dtypes) not in (0, 1, len(shapes)):
        raise AuditError(
            f"--input-dtype: give one for all inputs or one per --input-shape"
            f" ({len(dtypes)} for {len(shapes)} inputs)"
        )
    chosen = list(dtypes) * len(shapes) if len(dtypes) == 1 else list(dtypes)
    tensors = []
    for shape, name in zip(shapes, chosen or ["float32"] * len(shapes), strict=True):
        dtype = getattr(torch, name)
        floating = dtype.is_floating_point
        tensors.append(
            torch.randn(shape, dtype=dtype) if floating else torch.zeros(shape, dtype=dtype)
        )
    return tuple(tensors)


def parse_shapes(texts: Sequence[str]) -> list[tuple[int, ...]]:
    """``1,3,224,224`` -> (1, 3, 224, 224), one per ``--input-shape``.

    Raises:
        AuditError: a shape is not a comma-separated list of positive integers.
    """
    shapes = []
    for text in texts:
        parts = text.split(",")
        if not all(p.strip().isdigit() and int(p) > 0 for p in parts):
            raise AuditError(
                f"--input-shape {text}: expected positive integers such as 1,3,224,224"
            )
        shapes.append(tuple(int(p) for p in parts))
    return shapes
