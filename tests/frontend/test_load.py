"""Loading: weights dropped before inference, functions inlined, subgraph captures seen."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from onnx_flow.frontend import load
from onnx_flow.options import Limits, Options
from onnx_flow.pipeline import resolve
from tests.onnx_builders import model, squeeze_mlp


def test_inline_weights_are_dropped_but_small_tensors_of_any_dtype_kept() -> None:
    built = squeeze_mlp(narrow=32)  # two 64 x 32 weights: 2048 elements each
    target = numpy_helper.from_array(np.array([1, 64], dtype=np.int64), "target")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    built.graph.initializer.extend([target, scales])
    loaded = load.load(built, nodes=Limits().nodes)
    data = {t.name: t.raw_data for t in loaded.graph.initializer}
    assert data["down.w"] == b"" and data["up.w"] == b""
    assert data["target"] == target.raw_data and data["scales"] == scales.raw_data
    # The model passed in is left as it was.
    assert built.graph.initializer[0].raw_data != b""


def test_weights_in_constant_nodes_are_dropped_too() -> None:
    """paddle2onnx writes weights as Constant nodes: a 512 MiB one peaked at 2.6 GiB."""
    weight = numpy_helper.from_array(np.ones((64, 32), np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, 32], np.int64), "s")
    nodes = [
        helper.make_node("Constant", [], ["w"], value=weight, name="weight"),
        helper.make_node("Constant", [], ["s"], value=shape, name="shape"),
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("Reshape", ["h", "s"], ["y"], name="reshape"),
    ]
    built = model(nodes, [("x", TensorProto.FLOAT, [1, 64])], [("y", TensorProto.FLOAT, [1, 32])])
    loaded = load.load(built, nodes=Limits().nodes)
    kept = {n.name: n.attribute[0].t for n in loaded.graph.node if n.op_type == "Constant"}
    assert kept["weight"].raw_data == b"" and list(kept["weight"].dims) == [64, 32]
    assert kept["shape"].raw_data == shape.raw_data  # a shape argument stays
    assert onnx_flow.audit(built).total.max_flow == 32


def test_local_functions_are_inlined() -> None:
    squeeze = helper.make_function(
        "local",
        "Squeeze4",
        ["a"],
        ["b"],
        [helper.make_node("Slice", ["a", "start", "end", "axis"], ["b"])],
        [helper.make_opsetid("", 17)],
    )
    constants = [
        numpy_helper.from_array(np.array([0], np.int64), "start"),
        numpy_helper.from_array(np.array([4], np.int64), "end"),
        numpy_helper.from_array(np.array([1], np.int64), "axis"),
    ]
    graph = helper.make_graph(
        [helper.make_node("Squeeze4", ["x"], ["y"], domain="local")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=constants,
    )
    built = helper.make_model(
        graph,
        functions=[squeeze],
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
    )
    report = onnx_flow.audit(built)
    assert (report.total.max_flow, report.total.reference) == (4, 4)
    assert [t.op for t in report.total.cut_near_inputs] == ["Slice"]


def test_values_a_subgraph_captures_are_inputs_of_its_node() -> None:
    branch = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"])],
        "branch",
        [],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 8])],
    )
    nodes = [
        helper.make_node("If", ["flag"], ["y"], then_branch=branch, else_branch=branch, name="if")
    ]
    flag = ("flag", TensorProto.BOOL, [])  # an input: the If stays one operator
    built = model(nodes, [("x", 1, [1, 8]), flag], [("y", 1, [1, 8])])
    (node,) = resolve(built, Options.checked())[0].nodes
    assert node.inputs == ("flag", "x")
    assert onnx_flow.audit(built).total.max_flow == 8


def test_batch_dim_can_be_named() -> None:
    built = model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [("x", 1, ["n", "batch"])],
        [("y", 1, ["n", "batch"])],
    )
    report = onnx_flow.audit(built, batch_dim="batch", dims={"n": 5})
    assert dict(report.dims) == {"batch": 1, "n": 5}
    assert report.total.max_flow == 5


def test_several_outputs_are_judged_each_and_together() -> None:
    # x (8) -> a: 2 wide -> out1 (8); x -> out2 (8) directly: out1 is squeezed, out2 not.
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["a"], name="narrow"),
        helper.make_node("MatMul", ["a", "w2"], ["out1"], name="wide"),
        helper.make_node("Relu", ["x"], ["out2"], name="pass"),
    ]
    weights = [
        numpy_helper.from_array(np.zeros((8, 2), np.float32), "w1"),
        numpy_helper.from_array(np.zeros((2, 8), np.float32), "w2"),
    ]
    built = model(nodes, [("x", 1, [1, 8])], [("out1", 1, [1, 8]), ("out2", 1, [1, 8])], weights)
    report = onnx_flow.audit(built).to_dict()
    figures = [(o["name"], o["max_flow"], o["reference"]) for o in report["outputs"]]
    assert figures == [("out1", 2, 8), ("out2", 8, 8)]
    # Together: both outputs draw on x, which carries 8: F = 8 of min(8, 16).
    assert (report["max_flow"], report["reference"], report["bottleneck"]) == (8, 8, True)
    assert [o["bottleneck"] for o in report["outputs"]] == [True, False]
