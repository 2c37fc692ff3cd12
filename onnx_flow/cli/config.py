"""Project defaults from ``[tool.onnx-flow]`` in the nearest ``pyproject.toml``.

The file is looked for in the working directory and then in each parent. Its keys are
the settings of :class:`~onnx_flow.options.Options` by their Python names, and
``format``; command-line flags win over them. A table ``per_path`` holds settings for
the models a pattern matches (``fnmatch`` on the path below the project's folder, where
``*`` also matches ``/``; a pattern without ``/`` matches the file name)::

    [tool.onnx-flow]
    ignore = ["attention_head_rank"]  # finding kinds left out of the report
    threshold = 0.5
    measure = "rank"
    format = "sarif"

    [tool.onnx-flow.per_path."models/autoencoder*.onnx"]
    allow = ["enc.2"]                 # its latent is narrow on purpose

    [tool.onnx-flow.per_path."gpt2*.onnx"]
    dims = { sequence = 128 }

A model takes the defaults, then the settings of each pattern it matches, in the file's
order: a table (``dims``) adds names, a list (``allow``) adds items, a value replaces.
A dim, input or layer a model lacks is left out for that model.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onnx_flow.errors import AuditError, first_line
from onnx_flow.options import SETTINGS, Form, Setting

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Project", "find", "load"]

_TABLE = "onnx-flow"
_PER_PATH = "per_path"
_FORMAT = "format"
_SETTINGS = {setting.name: setting for setting in SETTINGS if setting.in_project}


@dataclass(frozen=True)
class Project:
    """What a project's ``[tool.onnx-flow]`` says; empty where it says nothing."""

    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Settings for every model, by name, as :meth:`Options.checked` takes them."""
    per_path: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    """Patterns and their settings, in the file's order."""
    folder: Path | None = None
    """The folder of the ``pyproject.toml``: the patterns match paths below it."""
    format: str | None = None

    def settings(self, patterns: tuple[str, ...] = ()) -> dict[str, Any]:
        """The settings of a model that matches ``patterns`` (:meth:`patterns`): the
        defaults, then each pattern's, in the file's order."""
        settings = dict(self.defaults)
        for pattern, more in self.per_path:
            if pattern in patterns:
                settings = _merged(settings, more)
        return settings

    def patterns(self, model: str) -> tuple[str, ...]:
        """The patterns of :attr:`per_path` that ``model`` matches."""
        if self.folder is None or not self.per_path:
            return ()
        try:
            below = Path(model).resolve().relative_to(self.folder.resolve()).as_posix()
        except (OSError, ValueError):  # outside the project
            return ()
        name = below.rpartition("/")[2]
        return tuple(
            pattern
            for pattern, _ in self.per_path
            if fnmatch.fnmatchcase(below, pattern)
            or ("/" not in pattern and fnmatch.fnmatchcase(name, pattern))
        )


def _merged(base: Mapping[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``more`` on top: tables add names, lists add items, values replace."""
    result = dict(base)
    for name, value in more.items():
        form = _SETTINGS[name].form
        if form is Form.TABLE and name in result:
            result[name] = {**result[name], **value}
        elif form is Form.LIST and name in result:
            result[name] = list(dict.fromkeys([*result[name], *value]))
        else:
            result[name] = value
    return result


def find(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start``."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load(start: Path) -> Project:
    """The ``[tool.onnx-flow]`` of the project around ``start``.

    Raises:
        AuditError: the file cannot be parsed, or a key is unknown or has the wrong type.
    """
    path = find(start)
    if path is None:
        return Project()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError, tomllib.TOMLDecodeError) as error:
        raise AuditError(f"{path}: cannot read [tool.{_TABLE}]: {first_line(error)}") from None
    tools = document.get("tool", {})
    table = tools.get(_TABLE) if isinstance(tools, dict) else None
    if table is None:
        return Project()
    where = f"{path}: [tool.{_TABLE}]"
    if not isinstance(table, dict):
        raise AuditError(f"{where} must be a table")
    table = dict(table)
    output_format = table.pop(_FORMAT, None)
    if output_format is not None and not isinstance(output_format, str):
        raise AuditError(f"{where}: {_FORMAT} must be a string")
    patterns = table.pop(_PER_PATH, {})
    if not isinstance(patterns, dict) or not all(isinstance(v, dict) for v in patterns.values()):
        raise AuditError(f"{where}: {_PER_PATH} must be a table of tables, one per pattern")
    return Project(
        defaults=_settings(table, where, (*_SETTINGS, _FORMAT, _PER_PATH)),
        per_path=tuple(
            (pattern, _settings(settings, f'{where}.{_PER_PATH}."{pattern}"', tuple(_SETTINGS)))
            for pattern, settings in patterns.items()
        ),
        folder=path.parent,
        format=output_format,
    )


def _settings(table: Mapping[str, Any], where: str, known: tuple[str, ...]) -> dict[str, Any]:
    """The settings of ``table``, each of the type its form takes.

    Raises:
        AuditError: a key is unknown or a value has the wrong type.
    """
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise AuditError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return {name: _typed(_SETTINGS[name], value, where) for name, value in table.items()}


def _typed(setting: Setting, value: Any, where: str) -> Any:
    """``value`` if it has the type ``setting``'s form takes in the file."""
    name, form = setting.name, setting.form
    if form is Form.SWITCH:
        if not isinstance(value, bool):
            raise AuditError(f"{where}: {name} must be true or false")
    elif form is Form.VALUE:
        expected = (str,) if setting.parse is None else (int, float)
        if isinstance(value, bool) or not isinstance(value, expected):
            kind = "a string" if setting.parse is None else "a number"
            raise AuditError(f"{where}: {name} must be {kind}")
    elif form is Form.LIST:
        if not isinstance(value, list) or not all(type(v) is str for v in value):
            raise AuditError(f"{where}: {name} must be a list of str values")
    elif not isinstance(value, dict) or (
        setting.item is not None and not all(type(v) is setting.item for v in value.values())
    ):
        detail = f" of {setting.item.__name__} values" if setting.item is not None else ""
        raise AuditError(f"{where}: {name} must be a table{detail}")
    return value
