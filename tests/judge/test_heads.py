"""The head judged apart: a model that ends in a fixed linear map to logits is judged up
to the map's input, the map is the softmax finding; a plain wide output is no head.

Every model here is built by hand, its figures derived in its docstring.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from tests.onnx_builders import model
from tests.runner import invoke


def _weight(name: str, *shape: int) -> onnx.TensorProto:
    rng = np.random.default_rng(0)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def _squeezed_head(output: str, module: str = "trunk") -> onnx.ModelProto:
    """x[1, 64] -> ``module`` 64 -> 8 -> MatMul 8 -> 100 -> ``output``.

    Whole model: 8 of min(64, 100) = 64, a bottleneck. With the 8 -> 100 map judged
    apart: the trunk delivers its 8 whole, 8 of min(64, 8) = 8.
    """
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name=f"/{module}/MatMul"),
        helper.make_node("MatMul", ["h", "w2"], [output], name="/out/MatMul"),
    ]
    return model(
        nodes,
        [("x", TensorProto.FLOAT, [1, 64])],
        [(output, TensorProto.FLOAT, [1, 100])],
        [_weight("w1", 64, 8), _weight("w2", 8, 100)],
    )


@pytest.mark.parametrize("output", ["logits", "scores", "class_scores"])
def test_an_output_named_as_class_scores_ends_in_a_head(output: str) -> None:
    report = onnx_flow.audit(_squeezed_head(output))
    assert (report.total.max_flow, report.total.reference, report.bottleneck) == (8, 8, False)
    (head,) = report.heads
    assert (head.tensor, head.d, head.vocabulary, head.node) == ("h", 8, 100, "/out/MatMul")
    assert [f.kind.value for f in report.findings] == ["softmax_bottleneck"]
    whole = onnx_flow.audit(_squeezed_head(output), whole_model=True)
    assert (whole.total.max_flow, whole.total.reference, whole.bottleneck) == (8, 64, True)
    assert whole.heads == () and whole.findings == report.findings


@pytest.mark.parametrize("output", ["y", "scoreboard", "features"])
def test_a_plain_wide_output_is_no_head(output: str) -> None:
    """Nothing says logits: the 8 -> 100 widening is judged as it stands, 8 of 64."""
    report = onnx_flow.audit(_squeezed_head(output))
    assert (report.total.max_flow, report.total.reference, report.bottleneck) == (8, 64, True)
    assert report.heads == () and report.findings == ()


def _pooled(*, back_to_image: bool) -> onnx.ModelProto:
    """x[1, 3, 8, 8] -> Conv 1x1 3 -> 4 -> GlobalAveragePool -> Flatten (4) -> Gemm 4 -> 48
    -> ``y``, and with ``back_to_image`` a Reshape to [1, 3, 4, 4] (a decoder, no class
    scores).

    A classifier: whole 4 of 48; the trunk delivers the pooled 4, 4 of 4.
    """
    nodes = [
        helper.make_node("Conv", ["x", "k"], ["c"], name="/conv/Conv"),
        helper.make_node("GlobalAveragePool", ["c"], ["p"], name="/pool/GlobalAveragePool"),
        helper.make_node("Flatten", ["p"], ["f"], name="/Flatten"),
        helper.make_node("Gemm", ["f", "w"], ["g" if back_to_image else "y"], name="/fc/Gemm"),
    ]
    initializers = [_weight("k", 4, 3, 1, 1), _weight("w", 4, 48)]
    shape = [1, 48]
    if back_to_image:
        nodes.append(helper.make_node("Reshape", ["g", "shape"], ["y"], name="/Reshape"))
        initializers.append(numpy_helper.from_array(np.array([1, 3, 4, 4], np.int64), "shape"))
        shape = [1, 3, 4, 4]
    return model(
        nodes,
        [("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [("y", TensorProto.FLOAT, shape)],
        initializers,
    )


def test_pooled_features_to_one_score_per_class_are_a_head() -> None:
    """A torchvision-style classifier whose output is named ``y``: the pooling says so."""
    report = onnx_flow.audit(_pooled(back_to_image=False))
    assert (report.total.max_flow, report.total.reference, report.bottleneck) == (4, 4, False)
    assert [(h.d, h.vocabulary, h.tensor) for h in report.heads] == [(4, 48, "f")]
    whole = onnx_flow.audit(_pooled(back_to_image=False), whole_model=True)
    assert (whole.total.max_flow, whole.total.reference) == (4, 48)


def test_pooled_features_decoded_back_to_an_image_are_no_head() -> None:
    report = onnx_flow.audit(_pooled(back_to_image=True))
    assert (report.total.max_flow, report.total.reference, report.bottleneck) == (4, 48, True)
    assert report.heads == ()


def test_a_layer_named_as_a_classifier_is_a_head() -> None:
    """``classifier`` is what transformers names a sequence classifier's last layer."""
    report = onnx_flow.audit(_squeezed_head("y", module="classifier"))
    assert report.heads == ()  # the trunk's layer is named so, not the last map
    named = _squeezed_head("y")
    named.graph.node[1].name = "/classifier/MatMul"
    (head,) = onnx_flow.audit(named).heads
    assert (head.module, head.d) == ("classifier", 8)


def test_the_cli_says_the_head_is_judged_apart_and_whole_model_judges_the_logits(
    tmp_path,
) -> None:
    path = tmp_path / "lm.onnx"
    onnx.save(_squeezed_head("logits"), path)
    result = invoke("audit", path)
    assert result.returncode == 0, result.stderr
    assert "no bottleneck  max-flow 8 of 8" in result.stdout
    assert "head out (8 -> 100 logits) judged apart" in result.stdout
    whole = invoke("audit", path, "--whole-model", "--format", "json")
    assert whole.returncode == 1
    report = json.loads(whole.stdout)
    assert (report["max_flow"], report["reference"], report["whole_model"]) == (8, 64, True)
    assert report["heads"] == []


def test_whole_model_in_the_project_config(tmp_path) -> None:
    onnx.save(_squeezed_head("logits"), tmp_path / "lm.onnx")
    (tmp_path / "pyproject.toml").write_text("[tool.onnx-flow]\nwhole_model = true\n")
    assert invoke("audit", "lm.onnx", cwd=tmp_path).returncode == 1
    (tmp_path / "pyproject.toml").write_text("[tool.onnx-flow]\nwhole_model = 1\n")
    result = invoke("audit", "lm.onnx", cwd=tmp_path)
    assert result.returncode == 2
    assert "whole_model must be true or false" in result.stderr
