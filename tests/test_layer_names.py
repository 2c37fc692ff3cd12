"""Layer names (``module``) for files of every exporter, and ``--allow`` by those names:
exporter metadata, else the scope path in node names, else the name of the weight a
node reads less its last part, else null."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

import onnx_flow
from onnx_flow.options import Options
from onnx_flow.pipeline import resolve
from tests.onnx_builders import model, weight
from tests.runner import run

EXPORTERS = Path(__file__).parent / "corpus" / "exporters"


def _cut_modules(report: onnx_flow.Report) -> list[str | None]:
    return [t.module for t in report.total.cut_near_inputs]


def test_tf2onnx_layers_are_the_keras_scopes_of_node_names() -> None:
    report = onnx_flow.audit(EXPORTERS / "keras_mlp.onnx")
    assert [t.node for t in report.total.cut_near_inputs] == ["mlp_1/squeeze_1/MatMul"]
    assert _cut_modules(report) == ["mlp_1/squeeze_1"]


def test_paddle2onnx_layers_are_the_weights_less_their_last_part() -> None:
    report = onnx_flow.audit(EXPORTERS / "paddle_mlp.onnx")
    # Node MatMul.1 reads linear_1.w_0: the second Linear, 64 -> 4.
    assert [t.node for t in report.total.cut_near_inputs] == ["MatMul.1"]
    assert _cut_modules(report) == ["linear_1"]


def test_a_node_without_scope_or_layered_weight_has_no_layer() -> None:
    built = model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="MatMul"),
            helper.make_node("MatMul", ["h", "head.weight"], ["y"], name="MatMul1"),
        ],
        [("x", TensorProto.FLOAT, [1, 64])],
        [("y", TensorProto.FLOAT, [1, 64])],
        [weight("w", 64, 4), weight("head.weight", 4, 64)],
    )
    assert _cut_modules(onnx_flow.audit(built)) == [None]  # w has no layer part
    producers = resolve(built, Options.checked())[0].producers
    assert producers["y"].module == "head"


def test_allow_takes_a_keras_layer_by_its_own_name() -> None:
    """The scope adds a tracing suffix (squeeze_1): the layer's own name works too."""
    for name in ("squeeze", "mlp_1/squeeze_1", "mlp_1/squeeze_1/MatMul"):
        assert onnx_flow.audit(EXPORTERS / "keras_mlp.onnx", allow=[name]).bottleneck is False
    assert run("audit", EXPORTERS / "keras_mlp.onnx", "--allow", "squeeze").returncode == 0


def test_allow_by_an_own_name_refuses_when_two_layers_share_it(tmp_path: Path) -> None:
    """Two scopes end in dense_1 and dense_2: ``dense`` names neither for sure."""
    nodes = [
        helper.make_node("MatMul", ["x", "a/dense_1/w"], ["h"], name="a/dense_1/MatMul"),
        helper.make_node("MatMul", ["h", "b/dense_2/w"], ["y"], name="b/dense_2/MatMul"),
    ]
    built = model(
        nodes,
        [("x", TensorProto.FLOAT, [1, 64])],
        [("y", TensorProto.FLOAT, [1, 64])],
        [weight("a/dense_1/w", 64, 4), weight("b/dense_2/w", 4, 64)],
    )
    path = tmp_path / "two.onnx"
    onnx.save(built, path)
    refused = run("audit", path, "--allow", "dense")
    assert refused.returncode == 2 and "--allow dense: no tensor, node or module" in refused.stderr
    assert run("audit", path, "--allow", "a/dense_1").returncode == 0
