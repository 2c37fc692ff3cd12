"""Renderers: one per format, each turning reports into text. None of them writes."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import NoReturn

from onnx_flow.report import Result

__all__ = ["Format", "render"]


class Format(str, Enum):
    """Output formats of ``onnx-flow audit``."""

    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"
    SARIF = "sarif"
    DOT = "dot"
    HTML = "html"


def render(
    reports: Sequence[Result],
    format: Format,
    *,
    color: bool = False,
) -> str:
    """Render the reports; one report for a single model, several for several models.

    Args:
        reports: the audits (or why a model could not be audited), in the order the
            models were given.
        format: the output format.
        color: whether the text format may use terminal colours.
    """
    if format is Format.TEXT:
        from onnx_flow.render import text

        return text.render(reports, color=color)
    if format is Format.JSON:
        from onnx_flow.render import json

        return json.render(reports)
    if format is Format.MARKDOWN:
        from onnx_flow.render import markdown

        return markdown.render(reports)
    if format is Format.SARIF:
        from onnx_flow.render import sarif

        return sarif.render(reports)
    if format is Format.DOT:
        from onnx_flow.render import dot

        return dot.render(reports)
    if format is Format.HTML:
        from onnx_flow.render import html

        return html.render(reports)
    return _unreachable(format)


def _unreachable(value: NoReturn) -> NoReturn:
    raise AssertionError(f"unhandled format {value!r}")
