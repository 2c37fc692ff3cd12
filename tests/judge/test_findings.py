"""Findings from theory: the softmax bottleneck, attention head rank, attention without
skips; on models built here and exported by both exporters where torch builds them."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from onnx_flow.flow.paths import PathsToOutputs
from onnx_flow.records import ShapedGraph
from tests.conftest import EXPORTERS
from tests.onnx_builders import model
from tests.runner import run
from tests.strategies import random_dags


def _kinds(report: onnx_flow.Report, kind: str) -> list:
    return [f for f in report.findings if f.kind == kind]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_gpt2_softmax_bottleneck_and_no_other(exported, exporter: str) -> None:
    report = onnx_flow.audit(exported("gpt2", exporter), dims={"sequence": 16})
    (softmax,) = _kinds(report, "softmax_bottleneck")
    assert (softmax.figures["d"], softmax.figures["vocabulary"]) == (768, 50257)
    assert softmax.figures["ratio"] == pytest.approx(769 / 50257)
    assert softmax.module == "model.lm_head"
    # Head size 64 >= 16 positions, and every attention has its residual.
    assert [f.kind for f in report.findings] == ["softmax_bottleneck"]


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize(("sequence", "expected"), [(8, 0), (32, 2)])
def test_bert_head_rank_below_the_sequence_only(exported, exporter, sequence, expected) -> None:
    report = onnx_flow.audit(exported("bert", exporter), dims={"sequence": sequence})
    heads = _kinds(report, "attention_head_rank")
    # Head size 32 / 2 heads = 16: below 32 positions, not below 8. Two layers.
    assert len(heads) == expected
    assert all(f.figures == {"head_size": 16, "sequence": 32, "heads": 2} for f in heads)
    assert [f.figures["d"] for f in _kinds(report, "softmax_bottleneck")] == [32]


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize(("sequence", "expected"), [(8, 0), (32, 2)])
def test_bert_with_an_attention_mask_has_the_same_findings(
    exported, exporter, sequence, expected
) -> None:
    """SDPA decomposed with the caller's mask added to the scores through Where: the
    scores' MatMul is still found behind the mask."""
    report = onnx_flow.audit(exported("bert_masked", exporter), dims={"sequence": sequence})
    heads = _kinds(report, "attention_head_rank")
    assert [f.figures for f in heads] == [{"head_size": 16, "sequence": 32, "heads": 2}] * expected
    assert [f.figures["d"] for f in _kinds(report, "softmax_bottleneck")] == [32]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_llama_grouped_query_attention(exported, exporter: str) -> None:
    """4 query heads of size 8 over 2 shared key/value heads, 16 positions."""
    report = onnx_flow.audit(exported("llama", exporter), dims={"sequence": 16})
    heads = _kinds(report, "attention_head_rank")
    assert [f.figures for f in heads] == [{"head_size": 8, "sequence": 16, "heads": 4}] * 2
    assert [f.figures["d"] for f in _kinds(report, "softmax_bottleneck")] == [32]
    assert _kinds(report, "attention_without_skip") == []


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_vit_768_to_1000_has_the_softmax_finding(exported, exporter: str) -> None:
    (softmax,) = _kinds(onnx_flow.audit(exported("vit768", exporter)), "softmax_bottleneck")
    assert softmax.figures["ratio"] == pytest.approx(769 / 1000)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_resnet_2048_to_1000_has_none(exported, exporter: str) -> None:
    assert onnx_flow.audit(exported("resnet2048", exporter)).findings == ()


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", ["squeeze", "autoencoder"])
def test_a_last_layer_that_gives_no_logits_is_no_softmax(exported, exporter, name) -> None:
    """The squeeze model's 4 -> 64 and the autoencoder's 128 -> 784 decoder widen, and
    nothing in the graph says their outputs are logits."""
    assert _kinds(onnx_flow.audit(exported(name, exporter)), "softmax_bottleneck") == []


def _head(output: str, reader: str | None) -> onnx.ModelProto:
    """x[1, 8] -> MatMul 8 x 100 -> ``reader`` (if any) -> ``output``."""
    weight = numpy_helper.from_array(np.ones((8, 100), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["scores" if reader else output])]
    outputs = [(output, TensorProto.FLOAT, [1, 100])]
    if reader == "ArgMax":
        nodes.append(helper.make_node("ArgMax", ["scores"], [output], axis=-1, keepdims=1))
        outputs = [(output, TensorProto.INT64, [1, 1])]
    elif reader:
        nodes.append(helper.make_node(reader, ["scores"], [output], axis=-1))
    return model(nodes, [("x", TensorProto.FLOAT, [1, 8])], outputs, [weight])


@pytest.mark.parametrize(
    ("output", "reader", "found"),
    [
        ("y", None, False),  # a regression head or a widening layer
        ("logits", None, True),
        ("class_logits", None, True),
        ("y", "Softmax", True),
        ("y", "LogSoftmax", True),
        ("label", "ArgMax", True),
    ],
)
def test_a_softmax_finding_needs_evidence_of_logits(output, reader, found: bool) -> None:
    report = onnx_flow.audit(_head(output, reader))
    assert [f.figures["d"] for f in _kinds(report, "softmax_bottleneck")] == ([8] if found else [])


def test_q_kt_before_a_softmax_is_no_softmax_bottleneck() -> None:
    """Scores of 6 queries against 16 keys of size 4 feed a Softmax with no MatMul by V
    after it: no attention is recognised, and no fixed 4 -> 16 map exists."""
    nodes = [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["p"], axis=-1),
    ]
    built = model(
        nodes,
        [("q", TensorProto.FLOAT, [1, 6, 4]), ("k", TensorProto.FLOAT, [1, 16, 4])],
        [("p", TensorProto.FLOAT, [1, 6, 16])],
    )
    assert onnx_flow.audit(built).findings == ()


def attention_stack(layers: int, *, residual: bool, n: int = 6, d: int = 8) -> onnx.ModelProto:
    """``layers`` single-head attentions over x[1, n, d], with or without residuals."""
    rng = np.random.default_rng(0)
    nodes, weights, x = [], [], "x"
    for i in range(layers):
        for part in ("q", "k", "v", "o"):
            weights.append(
                numpy_helper.from_array(
                    rng.standard_normal((d, d)).astype(np.float32), f"w{part}{i}"
                )
            )
        names = [f"{p}{i}" for p in ("q", "k", "v", "kt", "s", "p", "m", "o", "h")]
        q, k, v, kt, s, p, m, o, h = names
        nodes += [
            helper.make_node("MatMul", [x, f"wq{i}"], [q]),
            helper.make_node("MatMul", [x, f"wk{i}"], [k]),
            helper.make_node("MatMul", [x, f"wv{i}"], [v]),
            helper.make_node("Transpose", [k], [kt], perm=[0, 2, 1]),
            helper.make_node("MatMul", [q, kt], [s]),
            helper.make_node("Softmax", [s], [p], axis=-1, name=f"block{i}/softmax"),
            helper.make_node("MatMul", [p, v], [m]),
            helper.make_node("MatMul", [m, f"wo{i}"], [o]),
        ]
        if residual:
            nodes.append(helper.make_node("Add", [x, o], [h]))
            x = h
        else:
            x = o
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    return model(nodes, *_io(n, d), weights)


def _io(n: int, d: int) -> tuple[list, list]:
    """The input x and the output y, both [1, n, d]."""
    return [("x", TensorProto.FLOAT, [1, n, d])], [("y", TensorProto.FLOAT, [1, n, d])]


def test_a_stack_without_residuals_counts_its_depth() -> None:
    report = onnx_flow.audit(attention_stack(3, residual=False))
    found = _kinds(report, "attention_without_skip")
    assert [f.figures["depth"] for f in found] == [1, 2, 3]
    assert [f.node for f in found] == [f"block{i}/softmax" for i in range(3)]


def test_the_same_stack_with_residuals_has_none() -> None:
    assert (
        _kinds(onnx_flow.audit(attention_stack(3, residual=True)), "attention_without_skip") == []
    )


def test_head_rank_in_the_hand_built_stack() -> None:
    """Head size 4 below 6 positions: one finding per attention."""
    report = onnx_flow.audit(attention_stack(2, residual=True, n=6, d=4))
    assert [f.figures for f in _kinds(report, "attention_head_rank")] == [
        {"head_size": 4, "sequence": 6, "heads": 1}
    ] * 2


@pytest.mark.parametrize(
    ("flags", "code"),
    [
        ([], 0),
        (["--fail-on", "attention_without_skip"], 1),
        (["--fail-on", "all"], 1),
        (["--fail-on", "softmax_bottleneck"], 0),
        (["--fail-on", "nonsense"], 2),
    ],
)
def test_fail_on_makes_findings_count(tmp_path, flags: list[str], code: int) -> None:
    path = tmp_path / "stack.onnx"
    onnx.save(attention_stack(2, residual=False, n=4, d=8), path)
    result = run("audit", path, *flags)
    assert result.returncode == code, result.stderr
    if code != 2:
        assert "attention_without_skip" in result.stdout


def test_findings_are_in_every_format(tmp_path) -> None:
    path = tmp_path / "stack.onnx"
    onnx.save(attention_stack(2, residual=False), path)
    for output_format, marker in [
        ("json", '"kind": "attention_without_skip"'),
        ("markdown", "### Findings from theory"),
        ("sarif", "ONNXFLOW103"),
        ("html", "Findings from theory"),
        ("text", "findings from theory"),
    ]:
        assert marker in run("audit", path, "--format", output_format).stdout, output_format


def fused(op: str, *, residual: bool, n: int = 16, d: int = 32, heads: int = 4) -> onnx.ModelProto:
    """x[1, n, d] -> Q, K, V projections -> one fused attention op -> output projection."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((d, d)).astype(np.float32), f"w{p}")
        for p in "qkvo"
    ]
    nodes = [helper.make_node("MatMul", ["x", f"w{p}"], [p]) for p in "qkv"]
    if op == "MultiHeadAttention":
        nodes.append(
            helper.make_node(op, ["q", "k", "v"], ["m"], domain="com.microsoft", num_heads=heads)
        )
        opset, domains = 17, ["com.microsoft"]
    else:  # opset 23 Attention on [batch, sequence, hidden]
        nodes.append(
            helper.make_node(op, ["q", "k", "v"], ["m"], q_num_heads=heads, kv_num_heads=heads)
        )
        opset, domains = 23, []
    nodes.append(helper.make_node("MatMul", ["m", "wo"], ["o"]))
    nodes.append(
        helper.make_node(
            "Add" if residual else "Identity", ["x", "o"] if residual else ["o"], ["y"]
        )
    )
    return model(nodes, *_io(n, d), weights, opset=opset, domains=domains)


@pytest.mark.parametrize("op", ["MultiHeadAttention", "Attention"])
@pytest.mark.parametrize("residual", [True, False])
def test_fused_attention_ops(op: str, residual: bool) -> None:
    report = onnx_flow.audit(fused(op, residual=residual))
    assert [f.figures for f in _kinds(report, "attention_head_rank")] == [
        {"head_size": 8, "sequence": 16, "heads": 4}
    ]
    assert len(_kinds(report, "attention_without_skip")) == (0 if residual else 1)


@settings(max_examples=200, deadline=None)
@given(random_dags(max_nodes=12))
def test_paths_around_a_tensor_agree_with_a_forward_search(graph: ShapedGraph) -> None:
    """On random DAGs of tensors: a path from t to the outputs avoids b exactly when a
    search forward from t that never enters b reaches an output."""
    outputs, tensors = graph.outputs, list(graph.carrying)
    readers = {t: [n.outputs[0] for n in graph.nodes if t in n.inputs] for t in tensors}

    def reaches(start: str, blocked: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            name = stack.pop()
            if name == blocked or name in seen:
                continue
            if name in outputs:
                return True
            seen.add(name)
            stack += readers[name]
        return False

    paths = PathsToOutputs(graph)
    for blocked in tensors:
        for tensor in tensors:
            assert paths.around(tensor, blocked) == reaches(tensor, blocked), (tensor, blocked)


def test_attention_whose_probabilities_are_unsqueezed_and_shape_read_as_keras_writes() -> None:
    """tf2onnx's Keras MultiHeadAttention: Softmax -> Unsqueeze, whose Shape is read
    besides the Reshape that leads to the MatMul by V. Head size 4 below 6 positions."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), f"w{p}")
        for p in "qkv"
    ]
    back = numpy_helper.from_array(np.array([1, 6, 6], np.int64), "back")
    nodes = [
        *(helper.make_node("MatMul", ["x", f"w{p}"], [p]) for p in "qkv"),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Softmax", ["s"], ["p"], axis=-1),
        helper.make_node("Unsqueeze", ["p", "axis"], ["p5"]),
        helper.make_node("Shape", ["p5"], ["p5_shape"]),
        helper.make_node("Reshape", ["p5", "back"], ["p3"]),
        helper.make_node("MatMul", ["p3", "v"], ["y"]),
    ]
    axis = numpy_helper.from_array(np.array([-1], np.int64), "axis")
    built = model(
        nodes,
        [("x", TensorProto.FLOAT, [1, 6, 8])],
        [("y", TensorProto.FLOAT, [1, 6, 4])],
        [*weights, back, axis],
    )
    (head,) = _kinds(onnx_flow.audit(built), "attention_head_rank")
    assert head.figures == {"head_size": 4, "sequence": 6, "heads": 1}
