"""A model with several outputs has one verdict, said alike in every format: a
bottleneck where one of its outputs has one. The flow to all outputs together is
shown for information, never as a verdict: two outputs computed from one 256-wide
state each get all they need, yet together carry 256 of their 257 values."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path

import pytest

from onnx_flow.options import Options
from onnx_flow.pipeline import run as audit
from onnx_flow.render import Format, render
from onnx_flow.report import CutTensor, Measure, OutputResult, Point, Profile, Report

CORPUS = Path(__file__).parents[1] / "corpus"
ENTRIES = {e["file"]: e for e in json.loads((CORPUS / "manifest.json").read_text())["files"]}

#: The formats that state a verdict.
FORMATS = (Format.TEXT, Format.MARKDOWN, Format.HTML, Format.SARIF, Format.JSON)


def _tensor(name: str, width: int, op: str | None = None, reads: int | None = None) -> CutTensor:
    """A tensor of shape 1 x width, made by node ``name`` of module ``name`` (an input
    without ``op``), reading a 1 x ``reads`` tensor."""
    node = name if op else None
    shape = None if reads is None else (1, reads)
    return CutTensor(name, width, (1, width), node, op, node, reads, shape)


def _result(
    name: str,
    flow: int,
    reference: int,
    *cut: CutTensor,
    joint: bool = False,
    on_cut: tuple[CutTensor, ...] = (),
) -> OutputResult:
    """An output's result whose one minimum cut is ``cut``."""
    return OutputResult(name, flow, reference, 1.0, cut, cut, on_cut=on_cut, joint=joint)


def _report(total: OutputResult, *outputs: OutputResult) -> Report:
    """A report of ``outputs``, its profile the tensors on their cuts one after another."""
    tensors = {t.tensor: t for o in (total, *outputs) for t in o.cut_near_inputs}.values()
    points = tuple(
        Point(t.tensor, depth, t.width, t.width, t.tensor, t.width)
        for depth, t in enumerate(tensors)
    )
    return Report(
        model="vad.onnx",
        measure=Measure.ELEMENTS,
        dims=(),
        threshold=1.0,
        total=total,
        outputs=outputs,
        bypassed=(),
        unknown=(),
        inputs=(("audio", 576), ("state", 256)),
        profile=Profile(points, skips=(), operators=(), edges=()),
    )


def _passing() -> Report:
    """A voice detector's state h' and c' (128 each) hand on 256 values; its speech
    probability is read from h': each output gets all it needs (1 of 1, 256 of 256),
    both together 256 of 257."""
    h, c = _tensor("h", 128, "Mul", reads=128), _tensor("c", 128, "Add", reads=128)
    return _report(
        _result("*", 256, 257, h, c, joint=True),
        _result("prob", 1, 1, _tensor("prob", 1, "Sigmoid", reads=1)),
        _result("stateN", 256, 256, h, c),
    )


def _failing() -> Report:
    """x [64] -> hidden 64, then a: 64 -> 4 -> 64 and b: 64 -> 64; a gets 4 of 64, b 64
    of 64, both together 64 of 64."""
    squeeze = _tensor("a_down", 4, "Gemm", reads=64)
    return _report(
        _result("*", 64, 64, _tensor("x", 64), joint=True),
        _result("a", 4, 64, squeeze, on_cut=(squeeze,)),
        _result("b", 64, 64, _tensor("x", 64)),
    )


def _verdicts(page: str, output_format: Format) -> list[str]:
    """Each row of the table of outputs as its output and its verdict: ``a ok``."""
    if output_format is Format.TEXT:
        lines = page.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("  output "))
        rows = itertools.takewhile(lambda line: line.startswith("  "), lines[start + 1 :])
        return [" ".join([*row.split()[:-4], row.split()[-1]]) for row in rows]
    if output_format is Format.MARKDOWN:
        lines = [line for line in page.splitlines() if line.startswith("| ")]
        rows = [re.split(r"(?<!\\)\|", line)[1:-1] for line in lines if "---" not in line]
        return [f"{row[1].strip()} {row[5].strip()}" for row in rows[1:]]
    table = page.split("<h3>outputs</h3>", 1)[1].split("</table>", 1)[0]
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in table.split("<tr>")[2:]]
    return [f"{row[0]} {re.sub('<[^>]+>', '', row[4])}" for row in cells]


def _reads_as_passing(report: Report, output_format: Format) -> None:
    """No row, badge or word calls anything a bottleneck, no advice says what to change,
    and the cut is the narrowest cross-section, not a fault."""
    page = render([report], output_format)
    names = [o.name for o in report.outputs]
    if output_format is Format.JSON:
        data = json.loads(page)
        assert data["bottleneck"] is False
        assert not any(output["bottleneck"] for output in data["outputs"])
        assert (data["on_cut"], data["widened"]) == ([], None)  # nothing to change
        assert data["joint"] is True  # the top-level figures are all outputs together
        return
    if output_format is Format.SARIF:
        assert json.loads(page)["runs"][0]["results"] == []
        return
    for advice in ("needs at least", "gains nothing", "limits (max-flow"):
        assert advice not in page, (output_format, advice)
    if output_format is Format.TEXT:
        assert "BOTTLENECK" not in page and "minimum cut" not in page
        assert page.splitlines()[1] == "no bottleneck  in any of 2 outputs"
        assert "\nnarrowest cross-section" in page
    if output_format is Format.MARKDOWN:
        assert "bottleneck**" not in page and "1 model audited, no bottleneck." in page
    if output_format is Format.HTML:  # the picture's legend names its green marks
        assert "class='bad'" not in page and not re.search("<h3>[^<]*minimum cut", page)
        assert "<span class='ok'>no bottleneck</span> in any of 2 outputs" in page
        assert "<h3>narrowest cross-section" in page
    assert _verdicts(page, output_format) == [f"{name} ok" for name in names] + [
        "(all outputs, joint) -"
    ]


def _reads_as_failing(report: Report, output_format: Format, output: str) -> None:
    """The verdict names the failing output; its row says so and its advice is shown;
    the other outputs and the joint flow are no bottleneck."""
    page = render([report], output_format)
    if output_format is Format.JSON:
        data = json.loads(page)
        assert data["bottleneck"] is True
        assert [o["name"] for o in data["outputs"] if o["bottleneck"]] == [output]
        return
    if output_format is Format.SARIF:
        results = json.loads(page)["runs"][0]["results"]
        bottlenecks = [r for r in results if r["ruleId"] == "ONNXFLOW001"]
        assert [r["properties"]["output"] for r in bottlenecks] == [output]
        return
    if output_format is not Format.MARKDOWN:  # one table, no advice
        assert "needs at least 64" in page  # what would lift it
    verdicts = _verdicts(page, output_format)
    failing = {Format.TEXT: "BOTTLENECK", Format.MARKDOWN: "**bottleneck**"}
    assert f"{output} {failing.get(output_format, 'bottleneck')}" in verdicts
    assert verdicts[-1] == "(all outputs, joint) -"
    assert sum(verdict.endswith(" ok") for verdict in verdicts) == len(verdicts) - 2
    if output_format is Format.TEXT:
        assert page.splitlines()[1] == f"BOTTLENECK  in 1 of 2 outputs: {output}"
        assert re.search(f"\n[^\n]*minimum cut[^\n]* of output {output}\n", page)
    if output_format is Format.HTML:
        assert f"<span class='bad'>BOTTLENECK</span> in 1 of 2 outputs: {output}" in page
        assert re.search(f"<h3>[^<]*minimum cut[^<]* of output {output}</h3>", page)


@pytest.mark.parametrize("output_format", FORMATS, ids=str)
def test_a_model_whose_outputs_all_pass_reads_as_passing(output_format: Format) -> None:
    _reads_as_passing(_passing(), output_format)


@pytest.mark.parametrize("output_format", FORMATS, ids=str)
def test_a_failing_output_keeps_its_row_and_its_advice(output_format: Format) -> None:
    _reads_as_failing(_failing(), output_format, "a")


def test_a_line_of_its_own_is_never_wrapped_in_text() -> None:
    """Piped, the text is as wide as its lines: the model's dims stay on its line."""
    dims = (("attention_mask_sequence_length", 17), ("batch_size", 1), ("sequence_length", 1))
    cut = (_tensor("prob", 1, "Sigmoid", reads=1),)
    prob = OutputResult("prob", 1, 1, 1.0, cut, cut)
    report = dataclasses.replace(_report(prob, prob), model=f"{'deep/' * 12}vad.onnx", dims=dims)
    first = render([report], Format.TEXT).splitlines()[0]
    assert first == (
        f"{report.model} (elements; attention_mask_sequence_length=17, batch_size=1,"
        " sequence_length=1)"
    )


def _audited(file: str) -> Report:
    """The corpus file audited at the shapes and values its users feed, with its profile."""
    entry = ENTRIES[file]
    shapes = {name: shape for name, shape in entry["feed"].items() if shape}
    options = Options.checked(input_shapes=shapes, input_values=entry.get("values"))
    return audit(CORPUS / file, dataclasses.replace(options, picture=True))


@pytest.fixture(scope="module")
def silero() -> dict[str, Report]:
    """silero-vad's speech probability and the LSTM state it hands on: 1 of 1 and 256
    of 256, together 256 of 257 (the probability is read from that state)."""
    files = ("wheels/silero_vad_openvino_16k.onnx", "wheels/silero_vad_op18_ifless.onnx")
    return {file: _audited(file) for file in files}


@pytest.mark.parametrize("output_format", FORMATS, ids=str)
def test_silero_vad_passes_in_every_format(
    silero: dict[str, Report], output_format: Format
) -> None:
    for report in silero.values():
        assert (report.total.max_flow, report.total.reference) == (256, 257)
        _reads_as_passing(report, output_format)


@pytest.mark.parametrize("output_format", FORMATS, ids=str)
def test_a_two_output_export_with_a_squeezed_output_fails_in_every_format(
    output_format: Format,
) -> None:
    """Keras' two heads: a squeezes 64 through 4, b gets 64 of 64, together 64 of 64."""
    _reads_as_failing(_audited("exporters/keras_two_outputs.onnx"), output_format, "a")
