"""Declared bottlenecks (``--allow``): the declared squeeze passes, any other still fails."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from onnx import TensorProto, helper

import onnx_flow
from tests.conftest import EXPORTERS
from tests.onnx_builders import linear, model, squeeze_mlp
from tests.runner import invoke


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_autoencoder_passes_with_its_latent_declared(exported, exporter: str) -> None:
    report = onnx_flow.audit(exported("autoencoder", exporter), allow=["enc.2"])
    assert not report.bottleneck
    # The encoder delivers 32 of 784 into the latent, the decoder 32 of 32 out of it.
    figures = [(o.declared, o.max_flow, o.reference) for o in report.outputs]
    assert figures == [(False, 32, 32), (True, 32, 32)]
    assert report.to_dict()["allow"] == ["enc.2"]


def _chain(*widths: int) -> tuple[list, list]:
    """x -> l1 -> l2 -> ...: MatMuls named l1, l2, ... of the given widths."""
    nodes, weights, source = [], [], "x"
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths), start=1):
        layer, weight = linear(f"l{i}", source, n_in, n_out)
        nodes += layer
        weights += weight
        source = f"l{i}"
    return nodes, weights


def test_a_second_squeeze_still_fails() -> None:
    """64 -> 4 -> 64 -> 2 -> 64 with l1 declared: after the split, 4 in and 2 through."""
    nodes, weights = _chain(64, 4, 64, 2, 64)
    built = model(
        nodes, [("x", TensorProto.FLOAT, [1, 64])], [("l4", TensorProto.FLOAT, [1, 64])], weights
    )
    report = onnx_flow.audit(built, allow=["l1"])
    assert report.bottleneck
    assert (report.total.max_flow, report.total.reference) == (2, 4)
    assert [t.tensor for t in report.total.cut_near_inputs] == ["l3"]


def test_a_layer_with_a_parallel_branch_around_it_still_fails() -> None:
    """x feeds two 4-wide layers a and b side by side; declaring a leaves b's squeeze."""
    a, wa = linear("a", "x", 64, 4)
    b, wb = linear("b", "x", 64, 4)
    join = helper.make_node("Concat", ["a", "b"], ["ab"], axis=1, name="join")
    up, wu = linear("up", "ab", 8, 64)
    built = model(
        [*a, *b, join, *up],
        [("x", TensorProto.FLOAT, [1, 64])],
        [("up", TensorProto.FLOAT, [1, 64])],
        wa + wb + wu,
    )
    report = onnx_flow.audit(built, allow=["a"])
    # After the split: x (64) and a's stand-in (4) in; b (4) and the stand-in through.
    assert report.bottleneck
    assert (report.total.max_flow, report.total.reference) == (8, 64)
    assert {t.tensor for t in report.total.cut_near_inputs} == {"a", "b"}


def test_a_tensor_or_node_name_can_be_declared() -> None:
    built = squeeze_mlp()
    assert onnx_flow.audit(built).bottleneck
    assert not onnx_flow.audit(built, allow=["down"]).bottleneck  # the tensor
    built.graph.node[0].name = "down_node"  # a node name no tensor has
    assert not onnx_flow.audit(built, allow=["down_node"]).bottleneck


def test_a_weight_cannot_be_declared() -> None:
    with pytest.raises(onnx_flow.AuditError, match=r"--allow down\.w"):
        onnx_flow.audit(squeeze_mlp(), allow=["down.w"])  # it carries no sample information


def test_an_allow_that_matches_nothing_is_an_error_after_the_report() -> None:
    result = invoke("audit", "models/squeeze.onnx", "--allow", "enc.9")
    assert result.returncode == 2 and "BOTTLENECK" in result.stdout
    assert "--allow enc.9" in result.stderr and len(result.stderr.splitlines()) == 1
    with pytest.raises(onnx_flow.AuditError, match=r"--allow enc\.9: no tensor, node or module"):
        onnx_flow.audit(squeeze_mlp(), allow=["enc.9"])


def test_the_shipped_model_passes_with_its_squeeze_declared() -> None:
    assert invoke("audit", "models/squeeze.onnx", "--allow", "2").returncode == 0


def test_an_allow_that_matches_nothing_suggests_the_closest_layers(exported) -> None:
    with pytest.raises(onnx_flow.AuditError, match=r"--allow enc2: .*; did you mean 'enc\.2'"):
        onnx_flow.audit(exported("autoencoder", "dynamo"), allow=["enc2"])


CORPUS = Path(__file__).parents[1] / "corpus"


def test_suggestions_speak_each_exporters_names() -> None:
    """A Keras layer by its own name; a tf2onnx path (magika, from its wheel) by its last
    part, suggested whole."""
    with pytest.raises(onnx_flow.AuditError, match=r"did you mean 'squeeze'"):
        onnx_flow.audit(CORPUS / "exporters" / "keras_mlp.onnx", allow=["squeze"])
    magika = CORPUS / "wheels" / "magika_standard_v3_3.onnx"
    with pytest.raises(onnx_flow.AuditError, match=r"did you mean '[^']*/MagikaV2/Dense_1'"):
        onnx_flow.audit(magika, allow=["Dense1"], input_shapes={"bytes": (1, 2048)})
