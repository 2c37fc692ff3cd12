"""What other exporters write, each built here by hand, and the figures it audits to.

paddle2onnx and TensorFlow leave dims unnamed or write ``-1``; skl2onnx leaves the batch
dim with neither size nor name and ends classifiers in a ``ZipMap``; detectors read
float ``Resize`` scales from initializers; exporters record ``value_info`` for the sizes
they were traced at; ``ai.onnx.ml`` ops have no inference function.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from onnx_flow.report import DroppedOutputShape
from tests.onnx_builders import model, squeeze_mlp, weight
from tests.runner import invoke

CORPUS = Path(__file__).parents[1] / "corpus"


def _anonymous_batch(size: int | None) -> onnx.ModelProto:
    """The squeeze MLP with axis 0 of its input and output left without a name: no size
    at all (skl2onnx), or ``size`` (``-1``: paddle2onnx)."""
    built = squeeze_mlp()
    for value in (built.graph.input[0], built.graph.output[0]):
        batch = value.type.tensor_type.shape.dim[0]
        batch.Clear()
        if size is not None:
            batch.dim_value = size
    return built


@pytest.mark.parametrize("size", [None, -1], ids=["no size nor name", "-1"])
def test_an_unnamed_batch_dim_is_bound_to_one(size: int | None) -> None:
    report = onnx_flow.audit(_anonymous_batch(size))
    assert (report.total.max_flow, report.total.reference) == (4, 64)
    assert dict(report.inputs) == {"x": 64}


def _unnamed_image_dims() -> onnx.ModelProto:
    """x[-1, 3, ?, ?] -> Conv 3 -> 1 channel -> Conv 1 -> 3 channels (3x3, padded), as
    paddle2onnx writes a classifier's input: ``?`` for both height and width."""
    nodes = [
        helper.make_node("Conv", ["x", "narrow.w"], ["narrow"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["narrow", "wide.w"], ["y"], pads=[1, 1, 1, 1]),
    ]
    return model(
        nodes,
        [("x", TensorProto.FLOAT, [-1, 3, "?", "?"])],
        [("y", TensorProto.FLOAT, [-1, 3, "?", "?"])],
        [weight("narrow.w", 1, 3, 3, 3), weight("wide.w", 3, 1, 3, 3)],
    )


def test_input_shape_sets_unnamed_dims_one_by_one() -> None:
    report = onnx_flow.audit(_unnamed_image_dims(), input_shapes={"x": [1, 3, 4, 6]})
    # 3 x 4 x 6 = 72 in and out, squeezed to one channel: 4 x 6 = 24.
    assert (report.total.max_flow, report.total.reference) == (24, 72)


def test_an_unnamed_dim_asks_for_the_input_shape(tmp_path: Path) -> None:
    path = tmp_path / "paddle.onnx"
    onnx.save(_unnamed_image_dims(), path)
    refused = invoke("audit", path)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1
    assert "the shape of input 'x' [1, 3, ?, ?]" in refused.stderr
    assert "--input-shape x=1,3,H,W (input_shapes={'x': (1, 3, H, W)} in Python)" in refused.stderr
    given = invoke("audit", path, "--input-shape", "x=1,3,4,6", "--format", "json")
    assert given.returncode == 1 and '"max_flow": 24' in given.stdout


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("x=1,3,4", "'x' has 4 dims (shape [?, 3, ?, ?]), not 3"),
        ("x=1,4,4,6", "dim 1 of 'x' is fixed at 3, not 4"),
        ("image=1,3,4,6", "no data input named 'image' (its data inputs: x)"),
        ("x=1,3,0,6", "expected NAME=D1,D2,... with positive integers"),
    ],
)
def test_an_input_shape_that_does_not_fit_is_refused(
    tmp_path: Path, shape: str, message: str
) -> None:
    path = tmp_path / "paddle.onnx"
    onnx.save(_unnamed_image_dims(), path)
    refused = invoke("audit", path, "--input-shape", shape)
    assert refused.returncode == 2 and refused.stdout == ""
    assert message in refused.stderr and refused.stderr.count("\n") == 1


def test_input_shapes_come_from_the_project(tmp_path: Path) -> None:
    onnx.save(_unnamed_image_dims(), tmp_path / "paddle.onnx")
    (tmp_path / "pyproject.toml").write_text(
        "[tool.onnx-flow]\ninput_shapes = { x = [1, 3, 4, 6] }\n"
    )
    done = invoke("audit", "paddle.onnx", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1 and '"max_flow": 24' in done.stdout


def test_resize_reads_float_scales_from_an_initializer() -> None:
    """An FPN's upsampling: the scales are a float initializer that shape inference
    reads as a value."""
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    built = model(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")],
        [("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [("y", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [scales],
    )
    report = onnx_flow.audit(built)
    assert (report.total.max_flow, report.total.reference) == (192, 192)


def _stale_value_info() -> onnx.ModelProto:
    """x[batch, 3, h, w] -> AveragePool 2x2 -> Relu, with the pool's output recorded at
    the 224 x 224 the exporter traced."""
    nodes = [
        helper.make_node("AveragePool", ["x"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Relu", ["pooled"], ["y"]),
    ]
    built = model(
        nodes,
        [("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [("y", TensorProto.FLOAT, ["batch", 3, "h2", "w2"])],
    )
    built.graph.value_info.append(
        helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", 3, 112, 112])
    )
    return built


def test_stale_value_info_is_dropped_and_inferred_again() -> None:
    report = onnx_flow.audit(_stale_value_info(), dims={"h": 64, "w": 64})
    # 3 x 64 x 64 in, pooled to 3 x 32 x 32 = 3072 out.
    assert (report.total.max_flow, report.total.reference) == (3072, 3072)
    (method, tensors), *_ = report.shape_fallbacks
    assert "without the exporter's value_info" in method and tensors == 1


def test_value_info_that_fits_the_bound_shapes_is_kept() -> None:
    report = onnx_flow.audit(_stale_value_info(), dims={"h": 224, "w": 224})
    assert report.total.max_flow == 3 * 112 * 112 and report.shape_fallbacks == ()


def test_an_output_declared_at_other_sizes_is_dropped_and_named() -> None:
    built = _stale_value_info()
    built.graph.output[0].type.tensor_type.shape.dim[2].dim_value = 5  # 64 / 2 is 32
    report = onnx_flow.audit(built, dims={"h": 64, "w": 64})
    assert (report.total.max_flow, report.total.reference) == (3072, 3072)
    assert report.dropped_output_shapes == (
        DroppedOutputShape("y", (1, 3, 5, "w2"), (1, 3, 32, 32)),
    )


def test_a_contradiction_inside_the_graph_is_still_refused() -> None:
    """The pool's 32 x 32 (at h = w = 64) added to a bias fixed at 112 x 112."""
    built = _stale_value_info()
    del built.graph.value_info[:]
    built.graph.node[1].op_type = "Add"
    built.graph.node[1].input.append("bias")
    built.graph.initializer.append(weight("bias", 1, 3, 112, 112))
    with pytest.raises(onnx_flow.AuditError, match="shape inference failed"):
        onnx_flow.audit(built, dims={"h": 64, "w": 64})
    assert onnx_flow.audit(built, dims={"h": 224, "w": 224}).dropped_output_shapes == ()


def _declared_output(shape: list[int]) -> onnx.ModelProto:
    """x[1, 8] -> Linear 8 -> 4 -> y, whose output declares ``shape``."""
    return model(
        [helper.make_node("Gemm", ["x", "w"], ["y"])],
        [("x", TensorProto.FLOAT, [1, 8])],
        [("y", TensorProto.FLOAT, shape)],
        [weight("w", 8, 4)],
    )


@pytest.mark.parametrize(
    "declared", [[1, 4, 1], [4], [1, 5]], ids=["rank above", "rank below", "fixed dim"]
)
def test_an_output_the_graph_does_not_compute_is_audited_as_computed(
    tmp_path: Path, declared: list[int]
) -> None:
    path = tmp_path / "declared.onnx"
    onnx.save(_declared_output(declared), path)
    report = onnx_flow.audit(path)
    # 8 in, through the 4-wide Gemm output: 4 of min(8, 4).
    assert (report.total.max_flow, report.total.reference) == (4, 4)
    assert report.dropped_output_shapes == (DroppedOutputShape("y", tuple(declared), (1, 4)),)
    text = invoke("audit", path)
    assert text.returncode == 0, text.stderr
    shown = f"output 'y' declares [{', '.join(map(str, declared))}], the graph gives [1, 4]"
    assert shown in " ".join(text.stdout.split())
    as_json = json.loads(invoke("audit", path, "--format", "json").stdout)
    assert as_json["dropped_output_shapes"] == [
        {"output": "y", "declared": declared, "computed": [1, 4]}
    ]


def test_an_output_declared_as_the_graph_computes_it_is_kept() -> None:
    assert onnx_flow.audit(_declared_output([1, 4])).dropped_output_shapes == ()


def test_ddddocr_s_output_declared_at_another_rank_is_dropped_and_named() -> None:
    """ddddocr's recogniser declares ``[1, seqlen]``; its graph gives one row of 8210
    classes per 8 columns of the image: ``[16, 1, 8210]`` at width 128 (onnxruntime's
    own run of the file gives that shape, and warns that it differs)."""
    path = CORPUS / "wheels" / "ddddocr_common_old.onnx"
    report = onnx_flow.audit(path, input_shapes={"input1": [1, 1, 64, 128]})
    assert report.dropped_output_shapes == (
        DroppedOutputShape("387", (1, "seqlen"), (16, 1, 8210)),
    )
    # The reference: min(the image's 64 x 128 values, the output's 16 x 8210).
    assert report.total.reference == 64 * 128


def test_an_op_without_an_inference_function_falls_back_to_onnxruntime() -> None:
    """skl2onnx's StandardScaler: an ``ai.onnx.ml`` Scaler, which onnx cannot infer,
    then a 64 -> 4 MatMul, which strict inference then refuses for lack of a type."""
    nodes = [
        helper.make_node(
            "Scaler", ["x"], ["scaled"], domain="ai.onnx.ml", offset=[0.0] * 64, scale=[1.0] * 64
        ),
        helper.make_node("MatMul", ["scaled", "w"], ["y"]),
    ]
    built = model(
        nodes,
        [("x", TensorProto.FLOAT, [None, 64])],
        [("y", TensorProto.FLOAT, [None, 4])],
        [weight("w", 64, 4)],
        domains=["ai.onnx.ml"],
    )
    report = onnx_flow.audit(built)
    assert (report.total.max_flow, report.total.reference) == (4, 4)
    assert dict(report.inputs) == {"x": 64}
    methods = [method for method, _ in report.shape_fallbacks]
    assert any("no inference function (Scaler)" in method for method in methods)


def test_a_sequence_output_is_unknown_and_the_tensor_outputs_are_audited() -> None:
    """skl2onnx's classifiers end in a ZipMap, a sequence of maps; here a sequence."""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["scores"]),
        helper.make_node("SequenceConstruct", ["scores"], ["probabilities"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 10]),
            helper.make_tensor_sequence_value_info("probabilities", TensorProto.FLOAT, None),
        ],
        initializer=[weight("w", 64, 10)],
    )
    report = onnx_flow.audit(helper.make_model(graph))
    assert [o.name for o in report.outputs] == ["scores"]
    assert (report.total.max_flow, report.total.reference) == (10, 10)
    (unknown,) = report.unknown
    assert unknown.tensor == "probabilities" and "sequence" in unknown.reason


def test_stale_value_info_inside_if_branches_is_dropped_too() -> None:
    """A merged decoder's If (optimum's ``use_cache_branch``): its branches record
    ``value_info`` at the traced size, which inference checks inside the branch."""
    then_branch = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["positive"]),
            helper.make_node("Neg", ["positive"], ["t"]),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
        value_info=[helper.make_tensor_value_info("positive", TensorProto.FLOAT, ["batch", 16])],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
    )
    graph = helper.make_graph(
        [
            helper.make_node(
                "If", ["cached"], ["y"], then_branch=then_branch, else_branch=else_branch
            )
        ],
        "merged",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"]),
            helper.make_tensor_value_info("cached", TensorProto.BOOL, [1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"])],
    )
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    report = onnx_flow.audit(built, dims={"n": 8})
    assert (report.total.max_flow, report.total.reference) == (8, 8)
    (method, tensors), *_ = report.shape_fallbacks
    assert "without the exporter's value_info" in method and tensors == 1
