"""Markdown, SARIF (validated against the 2.1.0 schema) and DOT; every format stable."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import shutil
from pathlib import Path

import jsonschema
import onnx
import pytest
from onnx import helper

from onnx_flow.render import Format, sarif
from onnx_flow.report import FindingKind
from tests.onnx_builders import attention_layers, linear, model
from tests.runner import SHIPPED, invoke, run

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json").read_text())


def _folder(tmp_path: Path) -> Path:
    """The shipped model twice (one name with a pipe) and a broken file."""
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(SHIPPED, folder / "a.onnx")
    shutil.copy(SHIPPED, folder / "b|c.onnx")
    (folder / "z.onnx").write_bytes(b"\x08\x07")
    return folder


@pytest.mark.slow  # three models, each audited in a process of its own
def test_sarif_is_valid_and_has_one_result_per_bottleneck(tmp_path: Path) -> None:
    result = run("audit", _folder(tmp_path), "--format", "sarif")
    assert result.returncode == 2
    log = json.loads(result.stdout)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    # The shipped model's 4 -> 64 last layer gives no logits: no finding.
    results = log["runs"][0]["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [
        ("ONNXFLOW001", "error"),  # ratio 4/64 < 0.1
        ("ONNXFLOW001", "error"),
        ("ONNXFLOW002", "error"),
    ]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results]
    assert [Path(u).name for u in uris] == ["a.onnx", "b|c.onnx", "z.onnx"]
    assert "2 (Gemm, 4)" in results[0]["message"]["text"]
    assert results[0]["properties"]["ratio"] == pytest.approx(4 / 64)


def test_sarif_has_one_rule_per_finding_kind() -> None:
    rules = {rule for rule, _, _ in sarif._FINDING_RULES.values()}
    assert set(sarif._FINDING_RULES) == set(FindingKind) and len(rules) == len(FindingKind)


def test_sarif_without_a_bottleneck_has_only_the_finding(tmp_path: Path) -> None:
    """8 features -> 100 probabilities: 8 of 8 flow, and a softmax finding (9 of 100)."""
    down, weights = linear("scores", "x", 8, 100)
    softmax = helper.make_node("Softmax", ["scores"], ["p"], axis=-1)
    path = tmp_path / "classifier.onnx"
    onnx.save(model([*down, softmax], [("x", 1, [1, 8])], [("p", 1, [1, 100])], weights), path)
    result = invoke("audit", path, "--format", "sarif")
    assert result.returncode == 0
    log = json.loads(result.stdout)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    results = log["runs"][0]["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("ONNXFLOW101", "warning")]


def test_a_finding_in_layers_alike_is_one_result_or_line_in_every_format() -> None:
    """Three attention layers without residuals: one finding of each kind, each one
    SARIF result whose location names the three layers, one row or item elsewhere."""
    from onnx_flow.options import Options
    from onnx_flow.pipeline import run as audit
    from onnx_flow.render import render

    drawn = dataclasses.replace(Options.checked(), picture=True)  # HTML draws the profile
    report = audit(attention_layers([2, 2, 2], queries=32, residual=False), drawn)
    log = json.loads(render([report], Format.SARIF))
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    results = [r for r in log["runs"][0]["results"] if r["ruleId"] != "ONNXFLOW001"]
    assert [r["ruleId"] for r in results] == ["ONNXFLOW102", "ONNXFLOW103"]
    for result in results:
        (location,) = result["locations"]
        assert [
            (place["name"], place["properties"]["node"]) for place in location["logicalLocations"]
        ] == [
            (f"encoder.layer.{i}.attention", f"/encoder/layer.{i}/attention/Softmax")
            for i in range(3)
        ]
        assert result["message"]["text"].startswith("3 layers (encoder.layer.*.attention): ")
    for output_format, row in [
        (Format.TEXT, "attention_head_rank"),
        (Format.MARKDOWN, "| attention_head_rank |"),
        (Format.HTML, "<b>attention_head_rank</b>"),
    ]:
        assert render([report], output_format).count(row) == 1, output_format


def test_an_output_shape_dropped_is_one_line_in_every_format() -> None:
    from onnx_flow.options import Options
    from onnx_flow.pipeline import run as audit
    from onnx_flow.render import render

    gemm, weights = linear("y", "x", 8, 4)
    built = model(
        gemm, [("x", onnx.TensorProto.FLOAT, [1, 8])], [("y", onnx.TensorProto.FLOAT, [4])], weights
    )
    report = audit(built, dataclasses.replace(Options.checked(), picture=True))
    line = "output 'y' declares [4], the graph gives [1, 4]: the declaration is dropped"
    for output_format, shown in [
        (Format.TEXT, line),
        (Format.MARKDOWN, f"- &lt;model&gt;: {line}"),
        (Format.HTML, f"<p>{html.escape(line)}</p>"),
    ]:
        assert render([report], output_format).count(shown) == 1, output_format


@pytest.mark.slow  # three models, each audited in a process of its own
def test_markdown_is_one_table_with_a_row_per_output(tmp_path: Path) -> None:
    result = run("audit", _folder(tmp_path), "--format", "markdown")
    lines = result.stdout.split("### Findings")[0].splitlines()
    assert lines[0] == "## onnx-flow"
    assert lines[2] == "2 models audited, 2 with a bottleneck; 1 not audited."
    rows = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 3
    # Cells split on unescaped pipes only: the model named b|c keeps its pipe escaped.
    cells = [re.split(r"(?<!\\)\|", row)[1:-1] for row in rows]
    assert all(len(c) == 7 for c in cells)
    assert cells[1][0].strip().endswith("b\\|c.onnx")
    assert [c[5].strip() for c in cells] == ["**bottleneck**", "**bottleneck**", "**not audited**"]


def test_markdown_writes_a_model_in_memory_as_text() -> None:
    import onnx_flow
    from onnx_flow.render import render

    page = render([onnx_flow.audit(onnx.load(SHIPPED))], Format.MARKDOWN)
    assert "| &lt;model&gt; |" in page and "<model>" not in page
    assert "\n1 model audited, 1 with a bottleneck.\n" in page


def test_dot_draws_the_cut_in_red() -> None:
    result = invoke("audit", SHIPPED, "--format", "dot")
    red = [line for line in result.stdout.splitlines() if 'color="red"' in line]
    assert len(red) == 1 and '"/2/Gemm_output_0\\n4"' in red[0]
    assert result.stdout.count(" -> ") == 5  # x, three hidden tensors, y


@pytest.mark.slow  # two processes per format, each auditing three models apart
@pytest.mark.parametrize("output_format", [f.value for f in Format])
def test_two_runs_are_byte_identical(tmp_path: Path, output_format: str) -> None:
    # Node data for Model Explorer belongs to one model's graph.
    one = output_format == Format.MODEL_EXPLORER.value
    models = SHIPPED if one else _folder(tmp_path)
    first = run("audit", models, "--format", output_format)
    second = run("audit", models, "--format", output_format)
    assert first.stdout == second.stdout and first.stdout


def test_text_never_cuts_a_layer_name(tmp_path: Path) -> None:
    """A layer path far past the page width is printed whole, on one line."""
    scope = "/image_encoder_backbone/transformer_layers.11/attention/output_projection"
    wide, wide_weight = linear("wide", "x", 64, 64)
    narrow, narrow_weight = linear("narrow", "wide", 64, 4)
    wide[0].name, narrow[0].name = f"{scope}/wide_branch/MatMul", f"{scope}/narrow_branch/MatMul"
    built = model(
        [*wide, *narrow], [("x", 1, [1, 64])], [("narrow", 1, [1, 4])], wide_weight + narrow_weight
    )
    path = tmp_path / "long.onnx"
    onnx.save(built, path)
    printed = invoke("audit", path).stdout
    layer = "image_encoder_backbone.transformer_layers.11.attention.output_projection"
    assert f"{layer}.narrow_branch" in printed and "…" not in printed, printed
