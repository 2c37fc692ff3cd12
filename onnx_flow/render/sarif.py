"""SARIF 2.1.0, as GitHub code scanning reads it: one result per bottleneck.

Rules: ``ONNXFLOW001`` (an output receives less than the reference) and
``ONNXFLOW002`` (a model could not be audited). The level follows the ratio: below 0.1
an error, below 0.5 a warning, else a note. The location is the model file as given.
Findings from theory are warnings of rules ``ONNXFLOW101``-``103``, one per finding: a
finding in several layers is one result, its location naming each layer as a logical
location.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from onnx_flow.render.wording import cut_layers, figures, head
from onnx_flow.report import (
    Failure,
    Finding,
    FindingKind,
    FindingLayer,
    OutputResult,
    Report,
    Result,
)
from onnx_flow.version import __version__

__all__ = ["render"]

_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
_BOTTLENECK, _NOT_AUDITED = "ONNXFLOW001", "ONNXFLOW002"
_RULES = [
    {
        "id": _BOTTLENECK,
        "name": "InformationBottleneck",
        "shortDescription": {"text": "A layer squeezes the information an output needs"},
        "fullDescription": {
            "text": "The max-flow from the model's inputs to an output, in tensor widths, is"
            " below the reference: the narrowest of what the output depends on and what it"
            " delivers. The named layers form the narrowest cross-section."
        },
        "help": {
            "text": "Widen the named layers, add a skip connection around them, or declare"
            " them intentional with --allow LAYER."
        },
        "defaultConfiguration": {"level": "warning"},
    },
    {
        "id": _NOT_AUDITED,
        "name": "ModelNotAudited",
        "shortDescription": {"text": "The model could not be audited"},
        "help": {"text": "The message says why: fix the file or the options."},
        "defaultConfiguration": {"level": "error"},
    },
]


#: One rule per finding kind (a test checks that every kind has one).
_FINDING_RULES = {
    FindingKind.SOFTMAX_BOTTLENECK: (
        "ONNXFLOW101",
        "SoftmaxBottleneck",
        "The logits' rank is at most d + 1 of V",
    ),
    FindingKind.ATTENTION_HEAD_RANK: (
        "ONNXFLOW102",
        "AttentionHeadRank",
        "An attention head's logits have rank at most its head size",
    ),
    FindingKind.ATTENTION_WITHOUT_SKIP: (
        "ONNXFLOW103",
        "AttentionWithoutSkip",
        "Attention with no residual around it loses rank with depth",
    ),
}
_RULES += [
    {
        "id": rule,
        "name": name,
        "shortDescription": {"text": text},
        "defaultConfiguration": {"level": "warning"},
    }
    for rule, name, text in _FINDING_RULES.values()
]
_INDEX = {rule["id"]: index for index, rule in enumerate(_RULES)}


def render(reports: Sequence[Result], *, color: bool = False) -> str:
    """One SARIF log with one run of onnx-flow over every model.

    ``color`` is unused: the format has no colours.
    """
    results: list[dict[str, Any]] = []
    for report in reports:
        if isinstance(report, Failure):
            results.append(_result(_NOT_AUDITED, "error", report.error, report.model))
            continue
        for output in report.outputs:
            if output.bottleneck:
                results.append(_bottleneck(report, output))
        results += (_finding(report, finding) for finding in report.findings)
    log = {
        "$schema": _SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "onnx-flow",
                        "version": __version__,
                        "rules": _RULES,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def _bottleneck(report: Report, output: OutputResult) -> dict[str, Any]:
    trunk = "" if output.head is None else f" (its trunk: {head(output.head)})"
    message = (
        f"{'Declared output' if output.declared else 'Output'} {output.name!r}{trunk} receives"
        f" {figures(output, report.measure)}; narrowest layers: {cut_layers(output)}"
    )
    result = _result(_BOTTLENECK, _level(output.ratio), message, report.model)
    result["properties"] = {
        "output": output.name,
        "max_flow": output.max_flow,
        "reference": output.reference,
        "ratio": output.ratio,
        "measure": report.measure.value,
    }
    return result


def _finding(report: Report, finding: Finding) -> dict[str, Any]:
    """A warning with the finding's figures; its location names each of its layers."""
    result = _result(_FINDING_RULES[finding.kind][0], "warning", finding.message, report.model)
    layers = finding.layers or (FindingLayer(finding.node, finding.module, finding.tensor),)
    result["locations"][0]["logicalLocations"] = [
        {
            "name": layer.module or layer.node,
            "properties": {"node": layer.node, "tensor": layer.tensor},
        }
        for layer in layers
    ]
    result["properties"] = {"kind": finding.kind.value, "node": finding.node, **finding.figures}
    return result


def _result(rule: str, level: str, message: str, model: str) -> dict[str, Any]:
    return {
        "ruleId": rule,
        "ruleIndex": _INDEX[rule],
        "level": level,
        "message": {"text": message},
        "locations": [
            {"physicalLocation": {"artifactLocation": {"uri": PurePath(model).as_posix()}}}
        ],
    }


def _level(ratio: float) -> str:
    return "error" if ratio < 0.1 else "warning" if ratio < 0.5 else "note"
