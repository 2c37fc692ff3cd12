"""The profile's cross-section: checked against a brute-force reading of its definition,
against the max-flow (every cross-section is a cut), and on hand-derived widths."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from onnx import TensorProto, helper

from onnx_flow.flow.cut import solve
from onnx_flow.flow.reduce import prepare
from onnx_flow.judge.profile import profile
from onnx_flow.measure import widths
from onnx_flow.options import Options
from onnx_flow.pipeline import run
from onnx_flow.records import ShapedGraph
from tests.onnx_builders import linear, model
from tests.strategies import random_dags

_PICTURE = dataclasses.replace(Options.checked(), picture=True)


def _brute_force_cross_sections(graph: ShapedGraph) -> list[int]:
    """At each depth, the widths of the tensors some path from an input to an output
    crosses there: made at or before it (inputs from the start), read by a node that
    writes after it (outputs to the end)."""
    order = list(graph.carrying)
    sizes = {name: t.shape[0] for name, t in graph.types.items()}
    sections = []
    for depth in range(len(order)):
        made = set(graph.inputs) | set(order[: depth + 1])
        later = set(order[depth + 1 :])
        alive = [
            name
            for name in made
            if name in graph.outputs
            or any(name in n.inputs and later & set(n.outputs) for n in graph.nodes)
        ]
        sections.append(sum(sizes[name] for name in alive))
    return sections


@settings(max_examples=200, deadline=None)
@given(random_dags())
def test_cross_section_is_the_width_alive_and_never_below_the_max_flow(graph) -> None:
    resolved = widths.compute(graph)
    drawn = profile(graph, resolved)
    alive = [point.alive for point in drawn.points]
    assert alive == _brute_force_cross_sections(graph)
    flow = solve(prepare(graph.wiring).weighed(resolved), outputs=graph.outputs)
    assert min(alive) >= flow.value


def _residual_block():
    """x[64] -> down 4 -> relu -> up 64 -> x + up."""
    down, w1 = linear("down", "x", 64, 4)
    up, w2 = linear("up", "relu", 4, 64)
    nodes = [*down, helper.make_node("Relu", ["down"], ["relu"]), *up]
    nodes.append(helper.make_node("Add", ["x", "up"], ["y"]))
    io = [("x", TensorProto.FLOAT, [1, 64])]
    return model(nodes, io, [("y", TensorProto.FLOAT, [1, 64])], w1 + w2)


def test_a_skip_is_counted_where_it_carries_information() -> None:
    report = run(_residual_block(), _PICTURE)
    assert report.profile is not None
    # x, down (+ x), relu (+ x), up (+ x), y: the skip keeps 64 alive over the branch.
    assert [p.alive for p in report.profile.points] == [64, 68, 68, 128, 64]
    assert [p.width for p in report.profile.points] == [64, 4, 4, 64, 64]


@pytest.mark.parametrize(("name", "lowest"), [("unet", 3072), ("squeeze", 4), ("residual", 64)])
def test_the_profile_never_falls_below_the_max_flow(exported, name: str, lowest: int) -> None:
    """A U-Net stays at its input width where its inner layer dips; a squeeze dips to its
    cut; a residual block stays at its skip's width."""
    report = run(exported(name, "dynamo"), _PICTURE)
    assert report.profile is not None
    assert report.total.max_flow == lowest
    assert min(p.alive for p in report.profile.points) == lowest
    narrowest = min(p.width for p in report.profile.points if p.width)
    assert narrowest < lowest or name == "squeeze"


@pytest.mark.parametrize("name", ["keras_residual", "paddle_residual", "jax_nnx_residual"])
def test_the_profile_of_other_exporters_residuals_never_falls_below_the_max_flow(
    name: str,
) -> None:
    path = Path(__file__).parents[1] / "corpus" / "exporters" / f"{name}.onnx"
    report = run(str(path), _PICTURE)
    assert report.profile is not None
    assert min(p.alive for p in report.profile.points) == report.total.max_flow
