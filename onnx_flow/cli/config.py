"""Project defaults from ``[tool.onnx-flow]`` in the nearest ``pyproject.toml``.

The file is looked for in the working directory and then in each parent. Its keys set
defaults that command-line flags override::

    [tool.onnx-flow]
    allow = ["enc.2"]          # declared bottlenecks
    ignore = ["attention_head_rank"]  # finding kinds left out of the report
    threshold = 0.5
    dims = { sequence = 128 }
    input_shapes = { x = [1, 3, 640, 640] }
    input_values = { use_cache_branch = false }
    measure = "rank"
    energy = 0.99              # rank and data: cap at the energy rank
    limits = { nodes = 500000 }  # budgets (see Limits)
    whole_model = true         # the logits as the reference: no head judged apart
    uncentred = true           # data: the rank of the activations, not less their mean
    format = "sarif"
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from onnx_flow.errors import AuditError, first_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Config", "find", "load"]

_TABLE = "onnx-flow"
_KINDS: dict[type, str] = {list: "a list", dict: "a table", str: "a string"}


@dataclass(frozen=True)
class Config:
    """Defaults from a project; ``None`` or empty where the project says nothing."""

    allow: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    """Finding kinds, checked with the other options."""
    threshold: float | None = None
    dims: Mapping[str, int] = field(default_factory=dict)
    input_shapes: Mapping[str, list[int]] = field(default_factory=dict)
    input_values: Mapping[str, Any] = field(default_factory=dict)
    """Numbers, booleans or lists of them, checked with the other options."""
    measure: str | None = None
    energy: float | None = None
    format: str | None = None
    limits: Mapping[str, int] = field(default_factory=dict)
    whole_model: bool | None = None
    uncentred: bool | None = None


_KEYS = tuple(sorted(f.name for f in fields(Config)))


def find(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start``."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load(start: Path) -> Config:
    """The ``[tool.onnx-flow]`` defaults of the project around ``start``.

    Raises:
        AuditError: the file cannot be parsed, or a key is unknown or has the wrong type.
    """
    path = find(start)
    if path is None:
        return Config()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError, tomllib.TOMLDecodeError) as error:
        raise AuditError(f"{path}: cannot read [tool.{_TABLE}]: {first_line(error)}") from None
    tools = document.get("tool", {})
    table = tools.get(_TABLE) if isinstance(tools, dict) else None
    if table is None:
        return Config()
    where = f"{path}: [tool.{_TABLE}]"
    if not isinstance(table, dict):
        raise AuditError(f"{where} must be a table")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise AuditError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
    return Config(
        allow=tuple(_typed(table, "allow", list, where, item=str) or ()),
        ignore=tuple(_typed(table, "ignore", list, where, item=str) or ()),
        threshold=_number(table, "threshold", where),
        dims=dict(_typed(table, "dims", dict, where, item=int) or {}),
        input_shapes=dict(_typed(table, "input_shapes", dict, where, item=list) or {}),
        input_values=dict(_typed(table, "input_values", dict, where) or {}),
        measure=_typed(table, "measure", str, where),
        energy=_number(table, "energy", where),
        format=_typed(table, "format", str, where),
        limits=dict(_typed(table, "limits", dict, where, item=int) or {}),
        whole_model=_flag(table, "whole_model", where),
        uncentred=_flag(table, "uncentred", where),
    )


def _typed(
    table: dict[str, Any], key: str, kind: type, where: str, item: type | None = None
) -> Any:
    """``table[key]`` if it is a ``kind`` (whose items or values are ``item``s)."""
    if key not in table:
        return None
    value = table[key]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    if (
        not isinstance(value, kind)
        or isinstance(value, bool)
        or (item is not None and not all(type(v) is item for v in items))
    ):
        expected = _KINDS[kind]
        detail = f" of {item.__name__} values" if item is not None else ""
        raise AuditError(f"{where}: {key} must be {expected}{detail}")
    return value


def _number(table: dict[str, Any], key: str, where: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AuditError(f"{where}: {key} must be a number")
    return float(value)


def _flag(table: dict[str, Any], key: str, where: str) -> bool | None:
    value = table.get(key)
    if value is not None and not isinstance(value, bool):
        raise AuditError(f"{where}: {key} must be true or false")
    return value
