"""Real ONNX files written elsewhere (tests/corpus): trained models shipped in PyPI
wheels, and small models built once with skl2onnx, tf2onnx, jax2onnx and paddle2onnx.

Each audits to a report at the input shapes its users feed; where the manifest gives
figures derived by hand, the report has them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import onnx_flow

CORPUS = Path(__file__).parent / "corpus"
ENTRIES = json.loads((CORPUS / "manifest.json").read_text())["files"]


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry["file"] for entry in ENTRIES])
def test_a_real_file_audits_at_the_shapes_its_users_feed(entry: dict[str, Any]) -> None:
    shapes = {name: shape for name, shape in entry["feed"].items() if shape}
    report = onnx_flow.audit(
        CORPUS / entry["file"], input_shapes=shapes, input_values=entry.get("values")
    )
    assert dict(report.inputs).keys() == {i["name"] for i in entry["inputs"]}
    assert report.total.max_flow > 0
    if entry.get("values"):  # they decide the If that holds the network
        assert report.branches[0].taken is not None
    if entry["expected"] is not None:
        figures = {"max_flow": report.total.max_flow, "reference": report.total.reference}
        assert figures == entry["expected"]
