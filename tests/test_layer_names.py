"""Layer names (``module``) for files of every exporter, and ``--allow`` by those names:
exporter metadata, else the scope path in node names, else the name of the weight a
node reads (an initializer or a ``Constant`` node's output) less its last part, else
null; never a cast's or an exporter's helper, never a rewriting tool's prefix, and an
``If`` never by the layers its branches hold."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper

import onnx_flow
from onnx_flow.options import Options
from onnx_flow.pipeline import resolve
from tests.onnx_builders import model, weight
from tests.runner import invoke

CORPUS = Path(__file__).parent / "corpus"
EXPORTERS = CORPUS / "exporters"
WHEELS = CORPUS / "wheels"


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
    assert invoke("audit", EXPORTERS / "keras_mlp.onnx", "--allow", "squeeze").returncode == 0


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
    refused = invoke("audit", path, "--allow", "dense")
    assert refused.returncode == 2 and "--allow dense: no tensor, node or module" in refused.stderr
    assert invoke("audit", path, "--allow", "a/dense_1").returncode == 0


#: rapidocr's PP-OCRv4 files, paddle2onnx's weights in ``Constant`` nodes, at the input
#: shapes rapidocr feeds.
PADDLE_CONSTANTS = {
    "ch_PP-OCRv4_det_infer.onnx": (1, 3, 640, 640),
    "ch_PP-OCRv4_rec_infer.onnx": (1, 3, 48, 320),
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": (1, 3, 48, 192),
}


def _modules(report: dict[str, Any]) -> Iterator[str]:
    """Every layer name anywhere in a report's JSON object."""
    if isinstance(report, dict):
        if isinstance(report.get("module"), str):
            yield report["module"]
        for value in report.values():
            yield from _modules(value)
    elif isinstance(report, list):
        for value in report:
            yield from _modules(value)


@pytest.mark.parametrize("file", PADDLE_CONSTANTS)
def test_paddle_weights_in_constant_nodes_name_the_layers_that_read_them(file: str) -> None:
    """Each Conv or MatMul is named by the ``Constant`` that writes its weight, less the
    weight's last part (``conv2d_400.w_0`` -> ``conv2d_400``), read here off the file."""
    graph = onnx.load(WHEELS / file, load_external_data=False).graph
    constants = {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    expected = {
        node.output[0]: node.input[1].rpartition(".")[0] or None
        for node in graph.node
        if node.op_type in ("Conv", "ConvTranspose", "MatMul") and node.input[1] in constants
    }
    assert any(expected.values())  # (the cls model's convs read conv1_weights ...: none)
    options = Options.checked(input_shapes={"x": PADDLE_CONSTANTS[file]})
    producers = resolve(WHEELS / file, options)[0].producers
    assert {out: producers[out].module for out in expected} == expected
    # paddle2onnx's own constants (p2o.helper.constant.3) name none.
    named = {node.module for node in producers.values()} - {None}
    assert not any(module.startswith("p2o") for module in named)


def test_the_ppocr_layers_on_the_cut_read_their_paddle_names() -> None:
    """Node p2o.Conv.36 reads conv2d_145.w_0 (the manifest's note), p2o.MatMul.24
    linear_85.w_0; p2o.Conv.7 of the detector reads conv2d_400.w_0."""
    rec = onnx_flow.audit(
        WHEELS / "ch_PP-OCRv4_rec_infer.onnx", input_shapes={"x": (1, 3, 48, 320)}
    )
    assert [(t.node, t.module) for t in rec.total.cut_near_inputs] == [
        ("p2o.Conv.36", "conv2d_145")
    ]
    assert [head.module for head in rec.heads] == ["linear_85"]
    det = onnx_flow.audit(
        WHEELS / "ch_PP-OCRv4_det_infer.onnx", input_shapes={"x": (1, 3, 640, 640)}
    )
    assert ("p2o.Conv.7", "conv2d_400") in {(b.node, b.module) for b in det.bypassed}


def test_a_cast_or_an_exporters_helper_names_no_layer() -> None:
    """As in rapidocr 3.10's PP-OCRv6 detector: a ConvTranspose reads ``auto.cast.95`` (a
    mixed-precision cast folded into a weight), a bias Add ``p2o.pd_op.reshape.0.0``; a
    Mul reads ``p2o.helper.constant.3`` before the weight that names its layer."""
    nodes = [
        helper.make_node(
            "ConvTranspose", ["x", "auto.cast.95"], ["up"], name="ConvTranspose.0", strides=[2, 2]
        ),
        helper.make_node("Add", ["up", "p2o.pd_op.reshape.0.0"], ["biased"], name="Add.0"),
        helper.make_node("Constant", [], ["p2o.helper.constant.3"], value=weight("c", 1)),
        helper.make_node("Constant", [], ["conv2d_5.w_0"], value=weight("w", 1, 4, 1, 1)),
        helper.make_node("Mul", ["p2o.helper.constant.3", "biased"], ["scaled"], name="Mul.0"),
        helper.make_node("Conv", ["scaled", "conv2d_5.w_0"], ["y"], name="Conv.0"),
    ]
    built = model(
        nodes,
        [("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [("y", TensorProto.FLOAT, [1, 1, 16, 16])],
        [weight("auto.cast.95", 4, 4, 2, 2), weight("p2o.pd_op.reshape.0.0", 1, 4, 1, 1)],
    )
    producers = resolve(built, Options.checked())[0].producers
    modules = {out: producers[out].module for out in ("up", "biased", "scaled", "y")}
    assert modules == {"up": None, "biased": None, "scaled": None, "y": "conv2d_5"}


@pytest.mark.parametrize(
    ("file", "shapes", "values"),
    [
        ("silero_vad_openvino_16k.onnx", None, None),
        ("silero_vad.onnx", {"input": (1, 512), "state": (2, 1, 128)}, {"sr": 16000}),
    ],
)
def test_prefixes_of_a_rewriting_tool_are_no_part_of_a_layer(
    file: str, shapes: dict[str, tuple[int, ...]] | None, values: dict[str, int] | None
) -> None:
    """spox put ``If_0_then_branch__Inline_0__`` (and a merge ``F2::``) before the names
    of the TorchScript export it holds: ``F2::If_0_then_branch__Inline_0__/decoder/rnn/
    LSTM`` is TorchScript's ``/decoder/rnn/LSTM``, module ``decoder.rnn``, whose weights
    the file names ``...decoder.rnn.weight_ih``."""
    report = onnx_flow.audit(WHEELS / file, input_shapes=shapes, input_values=values)
    assert "decoder.rnn" in {t.module for t in report.total.cut_near_inputs}
    assert [b.layer for b in report.bypassed_layers()] == [
        f"encoder.{i}.reparam_conv" for i in (1, 2, 3)
    ]
    for module in _modules(report.to_dict()):
        assert "If_0_then_branch__Inline_0__" not in module and "::" not in module


def test_an_undecided_if_is_not_named_by_a_layer_its_branches_hold() -> None:
    """optimum's merged decoder is one If named ``optimum::if`` on use_cache_branch; its
    branches read transformer.h.0.ln_1's weights first, the If reads no weight."""
    report = onnx_flow.audit(
        EXPORTERS / "optimum_gpt2_decoder_merged.onnx",
        dims={"attention_mask_sequence_length": 9, "past_sequence_length": 8, "sequence_length": 1},
    )
    assert report.branches[0].taken is None
    at_if = [t for o in report.outputs for t in o.cut_near_inputs if t.node == "optimum::if"]
    assert at_if and all(t.module is None for t in at_if)


def test_an_if_takes_its_own_scope() -> None:
    """A scoped If (TorchScript's ``/model/If``) is of its own module, an unscoped one of
    none: never of the layer whose weights its branches read (``model.layers.0.v_proj``)."""
    branch = helper.make_graph(
        [helper.make_node("MatMul", ["x", "model.layers.0.v_proj.weight"], ["v"])],
        "then",
        [],
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 4])],
    )
    node = helper.make_node(
        "If", ["c"], ["y"], name="/model/If", then_branch=branch, else_branch=branch
    )
    built = model(
        [node],
        [("x", TensorProto.FLOAT, [1, 4]), ("c", TensorProto.BOOL, [])],
        [("y", TensorProto.FLOAT, [1, 4])],
        [weight("model.layers.0.v_proj.weight", 4, 4)],
    )
    assert resolve(built, Options.checked())[0].producers["y"].module == "model"
    built.graph.node[0].name = "If_0"
    assert resolve(built, Options.checked())[0].producers["y"].module is None
