"""The verdict of a model with several outputs: each output's own cut, and bypassed
only what a skip goes around in the flow to every output it reaches."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

import onnx_flow
from tests.onnx_builders import linear, model
from tests.runner import run


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
    result = run("audit", path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[1].startswith("all outputs: BOTTLENECK  max-flow 64 of 64")
    assert "minimum cut of output a" in lines
    cut = lines[lines.index("minimum cut of output a") + 2].split()
    assert cut[:3] == ["a_down", "MatMul", "a_down"]
    assert "minimum cut of output b" not in lines
