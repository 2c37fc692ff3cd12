"""Findings from theory: the softmax bottleneck, attention head rank, attention without
skips; on models built here and exported by both exporters where torch builds them."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from onnx_flow.flow.paths import PathsToOutputs
from onnx_flow.judge.findings import _pattern
from onnx_flow.records import ShapedGraph
from tests.conftest import EXPORTERS
from tests.onnx_builders import attention_layers, model
from tests.runner import invoke
from tests.strategies import random_dags


def _kinds(report: onnx_flow.Report, kind: str) -> list:
    return [f for f in report.findings if f.kind == kind]


def _rank(head: int, queries: int, keys: int, heads: int) -> dict[str, int]:
    """The figures of an ``attention_head_rank`` finding."""
    return {"head_size": head, "queries": queries, "keys": keys, "heads": heads}


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
@pytest.mark.parametrize(("sequence", "found"), [(8, False), (32, True)])
def test_bert_head_rank_below_the_sequence_only(exported, exporter, sequence, found) -> None:
    report = onnx_flow.audit(exported("bert", exporter), dims={"sequence": sequence})
    heads = _kinds(report, "attention_head_rank")
    # Head size 32 / 2 heads = 16: below 32 positions, not below 8. Two layers alike:
    # one finding that lists both.
    pattern = "model.bert.encoder.layer.*.attention.self"
    assert [(f.figures, f.module) for f in heads] == [(_rank(16, 32, 32, 2), pattern)] * found
    assert [layer.module for f in heads for layer in f.layers] == [
        pattern.replace("*", str(i)) for i in range(2 * found)
    ]
    assert [f.figures["d"] for f in _kinds(report, "softmax_bottleneck")] == [32]


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize(("sequence", "found"), [(8, False), (32, True)])
def test_bert_with_an_attention_mask_has_the_same_findings(
    exported, exporter, sequence, found
) -> None:
    """SDPA decomposed with the caller's mask added to the scores through Where: the
    scores' MatMul is still found behind the mask."""
    report = onnx_flow.audit(exported("bert_masked", exporter), dims={"sequence": sequence})
    heads = _kinds(report, "attention_head_rank")
    assert [(f.figures, len(f.layers)) for f in heads] == [(_rank(16, 32, 32, 2), 2)] * found
    assert [f.figures["d"] for f in _kinds(report, "softmax_bottleneck")] == [32]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_llama_grouped_query_attention(exported, exporter: str) -> None:
    """4 query heads of size 8 over 2 shared key/value heads, 16 positions."""
    report = onnx_flow.audit(exported("llama", exporter), dims={"sequence": 16})
    (heads,) = _kinds(report, "attention_head_rank")
    assert (heads.figures, heads.module) == (_rank(8, 16, 16, 4), "model.model.layers.*.self_attn")
    assert heads.message.startswith("2 layers (model.model.layers.*.self_attn): head size 8")
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
    """Head size 4 below 6 positions: one finding per attention (layers ``block0`` and
    ``block1`` differ in more than a number: no pattern holds both)."""
    report = onnx_flow.audit(attention_stack(2, residual=True, n=6, d=4))
    found = _kinds(report, "attention_head_rank")
    assert [(f.figures, f.module, f.layers) for f in found] == [
        (_rank(4, 6, 6, 1), "block0", ()),
        (_rank(4, 6, 6, 1), "block1", ()),
    ]
    assert found[0].message == (
        "block0: head size 4 is below 6 queries x 6 keys: the head's logits have rank at most 4"
    )


@pytest.mark.parametrize(
    ("queries", "keys", "found"),
    [
        (32, None, True),  # self-attention, 32 x 32
        (4, 64, False),  # a decoder's 4 queries over 64 keys: rank <= 4 anyway
        (32, 64, True),
        (64, 16, False),  # as many keys as the head size
        (16, 64, False),  # as many queries
    ],
)
def test_head_rank_is_judged_on_queries_and_keys(queries: int, keys, found: bool) -> None:
    """Each head's logits are queries x keys: their rank is at most the head size only
    where that is below both."""
    report = onnx_flow.audit(attention_layers([2], queries=queries, keys=keys, head=16))
    heads = _kinds(report, "attention_head_rank")
    assert [f.figures for f in heads] == ([_rank(16, queries, keys or queries, 2)] if found else [])
    if found:
        assert heads[0].message == (
            f"encoder.layer.0.attention: head size 16 is below {queries} queries x"
            f" {keys or queries} keys: each of the 2 heads' logits has rank at most 16"
        )


def test_layers_alike_are_one_finding() -> None:
    """Three layers whose modules differ in their number, with the same figures: one
    finding of each kind, at their pattern, listing them; without residuals, the
    deepest run's depth."""
    report = onnx_flow.audit(attention_layers([2, 2, 2], queries=32, residual=False))
    (heads,) = _kinds(report, "attention_head_rank")
    (no_skip,) = _kinds(report, "attention_without_skip")
    assert heads.message == (
        "3 layers (encoder.layer.*.attention): head size 16 is below 32 queries x 32 keys:"
        " each of the 2 heads' logits has rank at most 16"
    )
    assert (heads.module, heads.node) == ("encoder.layer.*.attention", heads.layers[0].node)
    assert heads.to_dict()["layers"] == [
        {
            "node": f"/encoder/layer.{i}/attention/Softmax",
            "module": f"encoder.layer.{i}.attention",
            "tensor": f"l{i}.p",
        }
        for i in range(3)
    ]
    assert no_skip.figures == {"depth": 3} and len(no_skip.layers) == 3
    assert no_skip.message.startswith("3 layers (encoder.layer.*.attention): no path goes")


def test_layers_with_other_figures_are_apart() -> None:
    """Layer 1 has one head, layers 0 and 2 have two: two findings, in graph order."""
    report = onnx_flow.audit(attention_layers([2, 1, 2], queries=32))
    found = _kinds(report, "attention_head_rank")
    assert [(f.figures["heads"], f.module) for f in found] == [
        (2, "encoder.layer.*.attention"),
        (1, "encoder.layer.1.attention"),
    ]
    assert [len(f.layers) for f in found] == [2, 0]
    assert found[1].to_dict()["layers"] == []


@pytest.mark.parametrize(
    ("module", "pattern"),
    [
        ("encoder.layer.3.attention.self", "encoder.layer.*.attention.self"),
        ("model.h.10.attn", "model.h.*.attn"),
        ("blocks.1.0", "blocks.*.*"),
        ("transformer/layer_1/mha", "transformer/layer_1/mha"),  # a name, not a number
        ("layer3.attn", "layer3.attn"),
        ("stage.2/block.11/attn", "stage.*/block.*/attn"),
    ],
)
def test_a_module_pattern_has_its_numbers_as_stars(module: str, pattern: str) -> None:
    assert _pattern(module) == pattern


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
    result = invoke("audit", path, *flags)
    assert result.returncode == code, result.stderr
    if code != 2:
        assert "attention_without_skip" in result.stdout


@pytest.mark.parametrize("output_format", ["text", "markdown", "sarif", "html"])
def test_an_ignored_kind_is_in_no_format_and_fails_nothing(tmp_path, output_format) -> None:
    path = tmp_path / "stack.onnx"
    onnx.save(attention_stack(2, residual=False, n=4, d=8), path)
    flags = ["--fail-on", "all", "--ignore", "attention_without_skip"]
    result = invoke("audit", path, *flags, "--format", output_format)
    assert result.returncode == 0, result.stderr
    assert "such attention(s) in a row" not in result.stdout  # the finding's message


def test_json_names_the_ignored_kinds_and_leaves_their_findings_out(tmp_path) -> None:
    path = tmp_path / "stack.onnx"
    onnx.save(attention_stack(2, residual=False, n=6, d=4), path)
    result = invoke("audit", path, "--format", "json", "--ignore", "attention_without_skip")
    report = json.loads(result.stdout)
    assert report["ignored"] == ["attention_without_skip"]
    assert {f["kind"] for f in report["findings"]} == {"attention_head_rank"}
    everything = json.loads(invoke("audit", path, "--format", "json", "--ignore", "all").stdout)
    assert everything["findings"] == [] and len(everything["ignored"]) == 3


@pytest.mark.parametrize(
    "flags",
    [
        ["--fail-on", "attention_head_rank", "--ignore", "attention_head_rank"],
        ["--fail-on", "attention_head_rank", "--ignore", "all"],
        ["--fail-on", "all", "--ignore", "all"],
        ["--ignore", "nonsense"],
    ],
)
def test_an_ignored_kind_cannot_fail(tmp_path, flags: list[str]) -> None:
    path = tmp_path / "stack.onnx"
    onnx.save(attention_stack(1, residual=False), path)
    result = invoke("audit", path, *flags)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "--ignore" in result.stderr, result.stderr


def test_ignore_in_python() -> None:
    """``fail_on=["all"]`` counts the kinds that are not ignored."""
    built = attention_stack(2, residual=False)
    report = onnx_flow.audit(built, fail_on=["all"], ignore=["attention_without_skip"])
    assert _kinds(report, "attention_without_skip") == [] and not report.failing
    assert "attention_without_skip" not in report.fail_on
    assert report.ignored == ("attention_without_skip",)
    with pytest.raises(onnx_flow.AuditError, match="--fail-on attention_without_skip"):
        onnx_flow.audit(built, fail_on=["attention_without_skip"], ignore=["all"])


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
        assert marker in invoke("audit", path, "--format", output_format).stdout, output_format


def fused(
    op: str,
    *,
    residual: bool,
    n: int = 16,
    d: int = 32,
    heads: int = 4,
    keys: int | None = None,
) -> onnx.ModelProto:
    """x[1, n, d] -> Q, K, V projections -> one fused attention op -> output projection;
    with ``keys``, K and V are projections of memory[1, keys, d] (cross-attention)."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((d, d)).astype(np.float32), f"w{p}")
        for p in "qkvo"
    ]
    nodes = [
        helper.make_node("MatMul", ["x" if p == "q" or keys is None else "memory", f"w{p}"], [p])
        for p in "qkv"
    ]
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
    inputs, outputs = _io(n, d)
    if keys is not None:
        inputs.append(("memory", TensorProto.FLOAT, [1, keys, d]))
    return model(nodes, inputs, outputs, weights, opset=opset, domains=domains)


@pytest.mark.parametrize("op", ["MultiHeadAttention", "Attention"])
@pytest.mark.parametrize("residual", [True, False])
def test_fused_attention_ops(op: str, residual: bool) -> None:
    report = onnx_flow.audit(fused(op, residual=residual))
    assert [f.figures for f in _kinds(report, "attention_head_rank")] == [_rank(8, 16, 16, 4)]
    assert len(_kinds(report, "attention_without_skip")) == (0 if residual else 1)


@pytest.mark.parametrize("op", ["MultiHeadAttention", "Attention"])
@pytest.mark.parametrize(("queries", "keys", "found"), [(4, 64, False), (32, 64, True)])
def test_fused_cross_attention(op: str, queries: int, keys: int, found: bool) -> None:
    """Head size 32 / 4 = 8: below 32 queries and 64 keys, not below 4 queries."""
    report = onnx_flow.audit(fused(op, residual=True, n=queries, keys=keys))
    heads = [f.figures for f in _kinds(report, "attention_head_rank")]
    assert heads == ([_rank(8, queries, keys, 4)] if found else [])


def _packed(op: str) -> onnx.ModelProto:
    """x[1, 16, 32] -> one com.microsoft attention op, 4 query heads of size 8 ->
    output projection, residual: ``Attention`` projects Q, K, V itself;
    ``GroupQueryAttention`` reads them packed in one [1, 16, (4 + 2 x 2) x 8] tensor
    (2 key heads); ``MultiHeadAttention`` adds 48 past keys to the 16 new ones."""
    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    weights, inputs = [weight("wo", 32, 32)], [("x", TensorProto.FLOAT, [1, 16, 32])]
    if op == "Attention":
        nodes = [helper.make_node(op, ["x", "wqkv"], ["m"], num_heads=4)]
        weights.append(weight("wqkv", 32, 96))
    elif op == "GroupQueryAttention":
        empty = ["", "", "", ""]
        nodes = [
            helper.make_node("MatMul", ["x", "wqkv"], ["qkv"]),
            helper.make_node(
                op, ["qkv", *empty, "lengths", "total"], ["m"], num_heads=4, kv_num_heads=2
            ),
        ]
        weights += [
            weight("wqkv", 32, 64),
            numpy_helper.from_array(np.array([15], np.int32), "lengths"),
            numpy_helper.from_array(np.array(16, np.int32), "total"),
        ]
    else:
        nodes = [helper.make_node("MatMul", ["x", f"w{p}"], [p]) for p in "qkv"]
        nodes.append(
            helper.make_node(op, ["q", "k", "v", "", "", "", "pk", "pv"], ["m"], num_heads=4)
        )
        weights += [weight(f"w{p}", 32, 32) for p in "qkv"]
        inputs += [(past, TensorProto.FLOAT, [1, 4, 48, 8]) for past in ("pk", "pv")]
    for node in nodes[-1:]:
        node.domain = "com.microsoft"
    nodes += [
        helper.make_node("MatMul", ["m", "wo"], ["o"]),
        helper.make_node("Add", ["x", "o"], ["y"]),
    ]
    outputs = [("y", TensorProto.FLOAT, [1, 16, 32])]
    return model(nodes, inputs, outputs, weights, domains=["com.microsoft"])


@pytest.mark.parametrize(
    ("op", "keys"), [("Attention", 16), ("GroupQueryAttention", 16), ("MultiHeadAttention", 64)]
)
def test_fused_attention_sizes_from_packed_and_past_inputs(op: str, keys: int) -> None:
    report = onnx_flow.audit(_packed(op))
    assert [f.figures for f in _kinds(report, "attention_head_rank")] == [_rank(8, 16, keys, 4)]


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
    assert head.figures == _rank(4, 6, 6, 1)
