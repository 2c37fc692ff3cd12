"""DESIGN.md's reference models give their exact figures with both exporters."""

from __future__ import annotations

import networkx as nx
import pytest

import onnx_flow
from models.reference import MODELS
from onnx_flow.render import text
from onnx_flow.report import TensorKind
from tests.conftest import EXPORTERS


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_reference_model_gives_design_figures(exported, name: str, exporter: str) -> None:
    expected = MODELS[name]
    report = onnx_flow.audit(exported(name, exporter), dims=expected.dims)
    assert report.total.max_flow == expected.max_flow
    assert report.total.reference == expected.reference
    assert report.bottleneck is expected.bottleneck
    assert report.total.ratio == pytest.approx(expected.max_flow / expected.reference)
    assert report.unknown == ()


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_whole_model_figures(exported, name: str, exporter: str) -> None:
    """With --whole-model the logits are the reference; a model without a head gives
    the same figures as by default."""
    expected = MODELS[name]
    report = onnx_flow.audit(exported(name, exporter), dims=expected.dims, whole_model=True)
    assert (report.total.max_flow, report.total.reference) == expected.whole_figures
    assert report.heads == ()


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_squeeze_cut_is_the_linear_64_to_4_output(exported, exporter: str) -> None:
    report = onnx_flow.audit(exported("squeeze", exporter))
    for cut in (report.total.cut_near_inputs, report.total.cut_near_outputs):
        assert [(t.module, t.op, t.width, t.shape) for t in cut] == [("2", "Gemm", 4, (1, 4))]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_autoencoder_cut_is_the_latent(exported, exporter: str) -> None:
    report = onnx_flow.audit(exported("autoencoder", exporter))
    assert [(t.module, t.width) for t in report.total.cut_near_inputs] == [("enc.2", 32)]
    assert report.total.ratio == pytest.approx(32 / 784)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_residual_branch_is_bypassed_by_the_skip(exported, exporter: str) -> None:
    report = onnx_flow.audit(exported("residual", exporter))
    # down's output and the ReLU after it: 4 wide, 64 flows around them.
    assert [(b.width, b.bypass) for b in report.bypassed] == [(4, 64), (4, 64)]
    assert report.bypassed[0].module == "down"
    assert [t.tensor for t in report.total.cut_near_inputs] == ["x"]
    # down's Gemm is the layer; the ReLU, written outside down, is other.
    assert [b.kind for b in report.bypassed] == [TensorKind.LAYER, TensorKind.OTHER]
    assert _rows(report) == [("down", 64, 4, 64)]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_unet_inner_layer_is_bypassed_by_the_skips(exported, exporter: str) -> None:
    report = onnx_flow.audit(exported("unet", exporter))
    inner = [b for b in report.bypassed if b.width == 4 * 8 * 8]
    assert [b.module for b in inner] == ["inner.0", "inner.1"]
    assert all(b.bypass == 3072 for b in inner)
    # One row: inner.0's Conv reads enc2's 16 x 16 x 16 and hands on 4 x 8 x 8.
    assert _rows(report) == [("inner.0", 16 * 16 * 16, 4 * 8 * 8, 3072)]


def _rows(report: onnx_flow.Report) -> list[tuple[str, int, int, int]]:
    """The bypassed layers as (layer, in, out, flow around)."""
    return [(r.layer, r.inputs, r.output, r.bypass) for r in report.bypassed_layers()]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_gpt2_trunk_passes_and_its_head_is_the_finding(exported, exporter: str) -> None:
    report = onnx_flow.audit(exported("gpt2", exporter), dims={"sequence": 16})
    assert not report.bottleneck
    assert dict(report.inputs) == {"x": 16 * 768}  # ids count as the 768 that embed them
    (head,) = report.heads
    assert (head.module, head.d, head.vocabulary, head.width) == (
        "model.lm_head",
        768,
        50257,
        16 * 768,
    )
    (finding,) = report.findings
    assert (finding.kind.value, finding.node) == ("softmax_bottleneck", head.node)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_gpt2_has_the_softmax_bottleneck(exported, exporter: str) -> None:
    report = onnx_flow.audit(exported("gpt2", exporter), dims={"sequence": 16}, whole_model=True)
    assert report.total.ratio == pytest.approx(768 / 50257)
    assert dict(report.inputs) == {"x": 16 * 50257}  # one-hot token ids
    # Bypassed means narrower than the flow: no 16 x 768 hidden state is listed for
    # being narrower than the 16 x 50257 logits.
    assert all(b.width < 16 * 768 for b in report.bypassed)
    (embedding,) = report.total.cut_near_inputs
    assert (embedding.op, embedding.module) == ("Gather", "model.transformer.wte")
    assert all(t.width == 16 * 768 for t in report.total.cut_near_outputs)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_gpt2_lists_no_plumbing_as_a_bypassed_layer(exported, exporter: str) -> None:
    report = onnx_flow.audit(exported("gpt2", exporter), dims={"sequence": 16})
    # Below the 16 x 768 flow, a skip goes only around each layer's Q K^T logits and
    # what scales, masks and normalises them: 12 heads x 16 queries x 16 keys.
    assert {(b.module, b.kind, b.width) for b in report.bypassed} == {
        (f"model.transformer.h.{layer}.attn", TensorKind.ATTENTION_LOGITS, 12 * 16 * 16)
        for layer in (0, 1)
    }
    assert {b["kind"] for b in report.to_dict()["bypassed"]} == {"attention_logits"}
    # No layer: the text has no table of bypassed layers (nor any other mention).
    assert report.bypassed_layers() == ()
    assert "bypassed" not in text.render([report])


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", ["squeeze", "autoencoder"])
def test_a_model_without_skips_bypasses_nothing(exported, name: str, exporter: str) -> None:
    """Every tensor narrower than the flow would be on every path: none is."""
    assert onnx_flow.audit(exported(name, exporter)).bypassed == ()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_reduced_solve_matches_networkx_on_the_unreduced_network(exported, name: str) -> None:
    from onnx_flow.flow import network
    from onnx_flow.flow.cut import solve
    from onnx_flow.flow.reduce import prepare
    from onnx_flow.options import Options
    from onnx_flow.pipeline import resolve
    from tests.oracles import flow_digraph

    options = Options.checked(dims=MODELS[name].dims)
    graph, resolved = resolve(exported(name, "torchscript"), options)
    flows = prepare(graph.wiring).weighed(resolved)
    digraph = flow_digraph(flows.network, outputs=list(graph.outputs))
    expected = nx.maximum_flow_value(digraph, network.SOURCE, network.SINK)
    assert solve(flows, outputs=graph.outputs).value == expected == MODELS[name].max_flow


def test_user_graph_has_op_nodes_and_tensor_edges_with_widths(exported) -> None:
    g = onnx_flow.graph(exported("residual", "torchscript"))
    assert isinstance(g, nx.MultiDiGraph)
    edges = sorted((key, data["width"]) for _, _, key, data in g.edges(keys=True, data=True))
    # x is one tensor read by two layers: an edge to each, both keyed "x".
    assert [width for _, width in edges] == [4, 4, 64, 64, 64, 64]
    assert [key for key, _ in edges].count("x") == 2
    assert g.nodes["/down/Gemm"] == {"op_type": "Gemm", "module": "down"}
    assert {data["dtype"] for *_, data in g.edges(data=True)} == {"FLOAT"}
    assert g.number_of_edges("input:x", "/Add") == 1


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_gpt2_ids_in_bits_count_what_embeds_them(exported, exporter: str) -> None:
    """16 ids embedded at 768 float32 values each: 16 x 768 x 32 bits in, the trunk's
    16 x 768 x 32 out; the whole model counts each id one-hot over 50257 of 32 bits."""
    path = exported("gpt2", exporter)
    report = onnx_flow.audit(path, dims={"sequence": 16}, measure="bits")
    assert dict(report.inputs) == {"x": 16 * 768 * 32}
    assert (report.total.max_flow, report.total.reference) == (16 * 768 * 32, 16 * 768 * 32)
    whole = onnx_flow.audit(path, dims={"sequence": 16}, measure="bits", whole_model=True)
    assert dict(whole.inputs) == {"x": 16 * 50257 * 32}
    assert (whole.total.max_flow, whole.total.reference) == (16 * 768 * 32, 16 * 50257 * 32)
