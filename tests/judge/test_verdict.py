"""The verdict of a model with several outputs: each output's own cut, and bypassed
only what a skip goes around in the flow to every output it reaches."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from onnx import TensorProto, helper

import onnx_flow
from tests.onnx_builders import linear, model
from tests.runner import invoke


def _two_heads(*, skip: bool = False) -> onnx.ModelProto:
    """x[64] -> hidden 64 -> head a: 64 -> 4 -> 64, head b: 64 -> 64; with ``skip``,
    head a reads hidden + up(down(hidden)), a 4-wide branch with a skip around it."""
    layers = [("hidden", "x", 64, 64)]
    if skip:
        layers += [("down", "hidden", 64, 4), ("up", "down", 4, 64)]
    layers += [("a_down", "skipped" if skip else "hidden", 64, 4), ("a", "a_down", 4, 64)]
    layers += [("b", "hidden", 64, 64)]
    nodes, weights = [], []
    for name, source, inputs, outputs in layers:
        more, weight = linear(name, source, inputs, outputs)
        if name == "a_down" and skip:
            nodes.append(helper.make_node("Add", ["hidden", "up"], ["skipped"]))
        nodes += more
        weights += weight
    io = [("x", TensorProto.FLOAT, [1, 64])]
    outputs = [("a", TensorProto.FLOAT, [1, 64]), ("b", TensorProto.FLOAT, [1, 64])]
    return model(nodes, io, outputs, weights)


def test_a_narrow_layer_on_the_only_path_to_an_output_is_its_cut_not_bypassed() -> None:
    report = onnx_flow.audit(_two_heads())
    # All outputs together: 64 through hidden; a alone: 4 through a_down.
    assert (report.total.max_flow, report.total.reference) == (64, 64)
    a, b = report.outputs
    assert (a.max_flow, a.reference, b.max_flow, b.reference) == (4, 64, 64, 64)
    assert [t.tensor for t in a.cut_near_inputs] == ["a_down"]
    assert report.bypassed == ()
    assert report.bottleneck


def test_a_skip_around_a_narrow_layer_still_bypasses_it() -> None:
    """The 4-wide down has the skip around it in the flow to a as to all outputs."""
    report = onnx_flow.audit(_two_heads(skip=True))
    assert [(b.tensor, b.bypass) for b in report.bypassed] == [("down", 64)]


def test_the_text_names_the_cut_of_each_bottlenecked_output(tmp_path: Path) -> None:
    path = tmp_path / "two.onnx"
    onnx.save(_two_heads(), path)
    result = invoke("audit", path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    # The verdict is the outputs': a fails; all outputs together (64 of 64) is no verdict.
    assert lines[1] == "BOTTLENECK  in 1 of 2 outputs: a"
    assert "minimum cut of output a" in lines
    cut = lines[lines.index("minimum cut of output a") + 2].split()
    assert cut[:3] == ["a_down", "MatMul", "a_down"]
    assert "minimum cut of output b" not in lines


def _series_of_narrow_layers() -> onnx.ModelProto:
    """x[64] -> a 4 -> b 4 -> c 4 -> d 16 -> e 64: three layers equally narrow in series,
    and a 16-wide one after them."""
    layers = [("a", "x", 64, 4), ("b", "a", 4, 4), ("c", "b", 4, 4), ("d", "c", 4, 16)]
    layers += [("e", "d", 16, 64)]
    nodes, weights = [], []
    for name, source, inputs, outputs in layers:
        more, weight = linear(name, source, inputs, outputs)
        nodes += more
        weights += weight
    io = [("x", TensorProto.FLOAT, [1, 64])]
    return model(nodes, io, [("e", TensorProto.FLOAT, [1, 64])], weights)


def test_every_layer_of_every_minimum_cut_and_the_gain_of_widening_them(
    tmp_path: Path,
) -> None:
    report = onnx_flow.audit(_series_of_narrow_layers())
    total = report.total
    assert [t.tensor for t in total.cut_near_inputs] == ["a"]
    assert [t.tensor for t in total.cut_near_outputs] == ["c"]
    assert [t.tensor for t in total.on_cut] == ["a", "b", "c"]
    # Widening a, b and c leaves d's 16 as the next limit: 16 of 64, 12 more.
    assert total.widened is not None
    assert total.widened.max_flow == 16
    assert [t.tensor for t in total.widened.cut_near_inputs] == ["d"]
    path = tmp_path / "series.onnx"
    onnx.save(_series_of_narrow_layers(), path)
    text = invoke("audit", path).stdout
    assert "every layer on a minimum cut (several cuts are as narrow)" in text
    for layer in ("a", "b", "c"):
        assert f"  {layer}        MatMul    {layer}         1x4          4     100%" in text
    # Each needs 16 features to lift the flow to d's 16; a reads 64, so a skip would do.
    assert text.endswith(
        "a (MatMul): 64 -> 4 features, needs at least 16, or a skip around it (its input"
        " carries 64)\nb (MatMul): 4 -> 4 features, needs at least 16\n"
        "c (MatMul): 4 -> 4 features, needs at least 16\n"
        "beyond that, d (MatMul, 16) limits (max-flow 16)\n"
    )
    data = json.loads(invoke("audit", path, "--format", "json").stdout)
    assert [(t["tensor"], t["share"]) for t in data["on_cut"]] == [
        ("a", 1.0),
        ("b", 1.0),
        ("c", 1.0),
    ]
    assert data["widened"]["max_flow"] == 16 and data["widened"]["gain"] == 12
    assert data["outputs"][0]["widened"] == data["widened"]


def test_a_model_that_passes_has_nothing_to_widen() -> None:
    """Every 64-wide tensor of x -> 64 -> 64 -> 64 is a minimum cut, and none needs
    changing: the report lists only the two extremes."""
    nodes, weights = [], []
    for name, source in (("a", "x"), ("b", "a"), ("c", "b")):
        more, weight = linear(name, source, 64, 64)
        nodes += more
        weights += weight
    io = [("x", TensorProto.FLOAT, [1, 64])]
    report = onnx_flow.audit(model(nodes, io, [("c", TensorProto.FLOAT, [1, 64])], weights))
    assert not report.bottleneck
    assert (report.total.on_cut, report.total.widened) == ((), None)
    assert [t.tensor for t in report.total.cut_near_inputs] == ["x"]
    assert [t.tensor for t in report.total.cut_near_outputs] == ["c"]
    assert report.to_dict()["on_cut"] == [] and report.to_dict()["widened"] is None
