"""Shapes ONNX inference leaves open, resolved by onnxruntime (symbolic, then a run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from onnx_flow.errors import AuditError
from onnx_flow.frontend import fallback
from tests.onnx_builders import linear
from tests.runner import invoke


def _squeeze_through(
    op: helper.NodeProto, extra: list[TensorProto], domain: str
) -> onnx.ModelProto:
    """x[batch, 64] -> MatMul to 4 -> ``op`` (reads 'down', writes 'mid') -> ...

    ``op`` is a contrib op that ONNX shape inference does not know.
    """
    down, w1 = linear("down", "x", 64, 4)
    graph = helper.make_graph(
        [*down, op],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("mid", TensorProto.FLOAT, None)],
        initializer=[*w1, *extra],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(domain, 1)]
    return helper.make_model(graph, opset_imports=opsets)


def test_onnx_inference_alone_leaves_the_contrib_op_open() -> None:
    gelu = helper.make_node("Gelu", ["down"], ["mid"], domain="com.microsoft", name="gelu")
    built = _squeeze_through(gelu, [], "com.microsoft")
    inferred = onnx.shape_inference.infer_shapes(built)
    assert not any(
        v.name == "mid" and v.type.tensor_type.HasField("shape")
        for v in (*inferred.graph.value_info, *inferred.graph.output)
    )


def test_symbolic_inference_resolves_a_com_microsoft_op() -> None:
    gelu = helper.make_node("Gelu", ["down"], ["mid"], domain="com.microsoft", name="gelu")
    up, w2 = linear("up", "mid", 4, 64)
    built = _squeeze_through(gelu, w2, "com.microsoft")
    built.graph.node.extend(up)
    built.graph.output[0].CopyFrom(
        helper.make_tensor_value_info("up", TensorProto.FLOAT, ["batch", 64])
    )
    report = onnx_flow.audit(built)
    # 64 -> 4 -> Gelu (4) -> 64: the squeeze is 4 of 64, seen once Gelu's shape is known.
    assert (report.total.max_flow, report.total.reference) == (4, 64)
    assert report.shape_fallbacks == ((fallback.SYMBOLIC, 1),)  # "mid"; "up" is declared
    assert not report.unknown


def test_one_run_resolves_an_op_only_onnxruntime_knows(tmp_path: Path) -> None:
    """CDist (com.microsoft) is unknown to both inferences; onnxruntime runs it."""
    centers = numpy_helper.from_array(np.ones((64, 4), np.float32), "centers")
    cdist = helper.make_node(
        "CDist", ["down", "centers"], ["mid"], domain="com.microsoft", name="cdist"
    )
    built = _squeeze_through(cdist, [centers], "com.microsoft")
    path = tmp_path / "cdist.onnx"
    onnx.save(built, path, save_as_external_data=True, location="w.bin", size_threshold=0)
    report = onnx_flow.audit(path)
    # 64 -> 4 -> distances to 64 centers: 64 wide again, through 4.
    assert (report.total.max_flow, report.total.reference) == (4, 64)
    assert report.shape_fallbacks == ((fallback.RUN, 1),)
    assert "synthetic inputs" in report.to_dict()["shape_fallbacks"][0]["method"]


def test_a_run_that_needs_a_missing_weight_file_says_so(tmp_path: Path) -> None:
    """The structure needs no weight file, but this model's shapes need a run: the
    missing file is the reason, not an unknown width."""
    centers = numpy_helper.from_array(np.ones((64, 4), np.float32), "centers")
    cdist = helper.make_node(
        "CDist", ["down", "centers"], ["mid"], domain="com.microsoft", name="cdist"
    )
    path = tmp_path / "cdist.onnx"
    built = _squeeze_through(cdist, [centers], "com.microsoft")
    onnx.save(built, path, save_as_external_data=True, location="w.bin", size_threshold=0)
    (tmp_path / "w.bin").unlink()
    with pytest.raises(onnx_flow.AuditError, match=r"file 'w\.bin' is missing"):
        onnx_flow.audit(path)


def test_an_op_no_one_knows_stays_unknown_and_is_named() -> None:
    mystery = helper.make_node("Mystery", ["down"], ["mid"], domain="example.custom", name="m")
    built = _squeeze_through(mystery, [], "example.custom")
    with pytest.raises(AuditError, match="width of 'mid' is unknown"):
        onnx_flow.audit(built)


def test_fallbacks_write_nothing_into_the_working_directory(tmp_path: Path) -> None:
    """onnxruntime's symbolic inference saves a model into the working directory when it
    cannot resolve everything; the audit must not let it."""
    mystery = helper.make_node("Mystery", ["down"], ["mid"], domain="example.custom", name="m")
    model_path = tmp_path / "model" / "mystery.onnx"
    model_path.parent.mkdir()
    onnx.save(_squeeze_through(mystery, [], "example.custom"), model_path)
    work = tmp_path / "work"
    work.mkdir()
    result = invoke("audit", model_path, cwd=work)
    assert result.returncode == 2 and "'mid' is unknown" in result.stderr
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in model_path.parent.iterdir()) == ["mystery.onnx"]
