"""Renderers: one per format, each turning reports into text. None of them writes.

Every format is a module of this package with one function,
``render(reports, *, color) -> str``; :data:`RENDERERS` names the module of each
:class:`Format`, and a module is imported only when its format is asked for (the text
and comparison formats import rich, the plot matplotlib). The renderers import only
:mod:`onnx_flow.report`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from enum import Enum, unique
from typing import Protocol

from onnx_flow.report import Result

__all__ = ["RENDERERS", "Format", "render"]


@unique
class Format(str, Enum):
    """Output formats of ``onnx-flow audit``."""

    TEXT = "text"
    JSON = "json"
    JSONL = "jsonl"
    MARKDOWN = "markdown"
    SARIF = "sarif"
    DOT = "dot"
    HTML = "html"
    MODEL_EXPLORER = "model-explorer"


#: Format -> the module of this package that renders it.
RENDERERS: dict[Format, str] = {
    Format.TEXT: "text",
    Format.JSON: "json",
    Format.JSONL: "jsonl",
    Format.MARKDOWN: "markdown",
    Format.SARIF: "sarif",
    Format.DOT: "dot",
    Format.HTML: "html",
    Format.MODEL_EXPLORER: "model_explorer",
}


class Renderer(Protocol):
    """What each format's module provides."""

    def render(self, reports: Sequence[Result], *, color: bool) -> str:
        """The reports as this format's text."""


def render(reports: Sequence[Result], format: Format, *, color: bool = False) -> str:
    """Render the reports; one report for a single model, several for several models.

    Args:
        reports: the audits (or why a model could not be audited), in the order the
            models were given.
        format: the output format.
        color: whether the format may use terminal colours (the text format does).
    """
    renderer: Renderer = importlib.import_module(f"{__name__}.{RENDERERS[format]}")
    return renderer.render(reports, color=color)
