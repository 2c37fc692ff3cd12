"""Every format's exact output for the hand-built reports of :mod:`tests.render.fixtures`.

Set ONNX_FLOW_UPDATE_GOLDEN=1 to rewrite the golden files, then review the diff. No
model is loaded: a failure here is the renderer's alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from onnx_flow.render import Format, render, sarif
from tests.render.fixtures import ALL, squeeze

GOLDEN = Path(__file__).parent / "golden"

#: The golden file of each format.
FILES = {
    Format.TEXT: "several.txt",
    Format.JSON: "several.json",
    Format.JSONL: "several.jsonl",
    Format.MARKDOWN: "several.md",
    Format.HTML: "several.html",
    Format.SARIF: "several.sarif",
    Format.DOT: "several.dot",
    Format.MODEL_EXPLORER: "squeeze.model-explorer.json",  # node data of one graph
}

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json").read_text())


def _rendered(output_format: Format) -> str:
    one = output_format is Format.MODEL_EXPLORER
    return render([squeeze()] if one else list(ALL.values()), output_format)


@pytest.mark.parametrize("output_format", list(Format), ids=str)
def test_output_matches_golden_file(output_format: Format, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sarif, "__version__", "0.0.0")  # the log names the tool's version
    page = _rendered(output_format)
    golden = GOLDEN / FILES[output_format]
    if os.environ.get("ONNX_FLOW_UPDATE_GOLDEN") == "1":
        golden.write_text(page)
    assert page == golden.read_text()


def test_every_format_has_a_golden_file() -> None:
    assert set(FILES) == set(Format)
    assert sorted(path.name for path in GOLDEN.iterdir()) == sorted(FILES.values())


def test_the_golden_sarif_is_valid() -> None:
    log = json.loads((GOLDEN / FILES[Format.SARIF]).read_text())
    jsonschema.Draft4Validator(SCHEMA).validate(log)


def test_the_json_formats_say_each_case_as_its_docstring_derives() -> None:
    """The figures the fixtures derive by hand, read back from the golden JSON and
    JSON Lines: the same objects, one a list and one a line each."""
    listed = json.loads((GOLDEN / FILES[Format.JSON]).read_text())
    lines = (GOLDEN / FILES[Format.JSONL]).read_text().splitlines()
    assert [json.loads(line) for line in lines] == listed
    cases = dict(zip(ALL, listed, strict=True))
    figures = {
        name: (case["max_flow"], case["reference"], case["bottleneck"])
        for name, case in cases.items()
        if "error" not in case
    }
    assert figures == {
        "squeeze": (4, 64, True),
        "detector": (20, 20, False),
        "classifier": (6, 8, True),
    }
    assert cases["squeeze"]["widened"]["gain"] == 60
    assert [o["bottleneck"] for o in cases["detector"]["outputs"]] == [False, False]
    assert cases["broken"]["error"].endswith("not an ONNX model (a protobuf parse error)")
