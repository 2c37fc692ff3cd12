"""Graph features real exports have: KV caches, several inputs and outputs, dims named by
expressions, shipped value_info, optional inputs left empty, subgraphs that capture
outer values. Figures are derived by hand in each test."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from tests.onnx_builders import model, weight

V, D, PAST, NEW = 50, 8, 15, 1
TOTAL = "past_sequence_length + sequence_length"


def kv_cache_step() -> onnx.ModelProto:
    """One decoder step, one head of size D: token ids, a K/V cache and an additive
    attention mask in; logits and the grown cache out. The mask and the grown cache are
    ``TOTAL`` long, a dim named by an expression."""
    n = helper.make_node
    nodes = [
        n("Gather", ["embedding", "input_ids"], ["h"], name="embed"),
        n("MatMul", ["h", "wq"], ["q"], name="attn/q"),
        n("MatMul", ["h", "wk"], ["k"], name="attn/k"),
        n("MatMul", ["h", "wv"], ["v"], name="attn/v"),
        n("Unsqueeze", ["q", "axis1"], ["q1"], name="attn/q1"),
        n("Unsqueeze", ["k", "axis1"], ["k1"], name="attn/k1"),
        n("Unsqueeze", ["v", "axis1"], ["v1"], name="attn/v1"),
        n("Concat", ["past_key_values.0.key", "k1"], ["present.0.key"], axis=2, name="cat_k"),
        n("Concat", ["past_key_values.0.value", "v1"], ["present.0.value"], axis=2, name="cat_v"),
        n("Transpose", ["present.0.key"], ["kt"], perm=[0, 1, 3, 2], name="attn/kt"),
        n("MatMul", ["q1", "kt"], ["scores"], name="attn/scores"),
        n("Unsqueeze", ["attention_mask", "axes12"], ["mask"], name="attn/mask"),
        n("Add", ["scores", "mask"], ["masked"], name="attn/masked"),
        n("Softmax", ["masked"], ["probs"], axis=-1, name="attn/softmax"),
        n("MatMul", ["probs", "present.0.value"], ["mixed"], name="attn/mix"),
        n("Squeeze", ["mixed", "axis1"], ["attn"], name="attn/squeeze"),
        n("Add", ["h", "attn"], ["h2"], name="residual"),
        # An optional input left empty: Clip without a minimum.
        n("Clip", ["h2", "", "clip_max"], ["h3"], name="clip"),
        n("MatMul", ["h3", "head"], ["logits"], name="lm_head"),
    ]
    cache = ["batch", 1, "past_sequence_length", D]
    grown = ["batch", 1, TOTAL, D]
    built = model(
        nodes,
        [
            ("input_ids", TensorProto.INT64, ["batch", "sequence_length"]),
            ("past_key_values.0.key", TensorProto.FLOAT, cache),
            ("past_key_values.0.value", TensorProto.FLOAT, cache),
            ("attention_mask", TensorProto.FLOAT, ["batch", TOTAL]),
        ],
        [
            ("logits", TensorProto.FLOAT, ["batch", "sequence_length", V]),
            ("present.0.key", TensorProto.FLOAT, grown),
            ("present.0.value", TensorProto.FLOAT, grown),
        ],
        [
            weight("embedding", V, D),
            *(weight(w, D, D) for w in ("wq", "wk", "wv")),
            weight("head", D, V),
            numpy_helper.from_array(np.array([1], np.int64), "axis1"),
            numpy_helper.from_array(np.array([1, 2], np.int64), "axes12"),
            numpy_helper.from_array(np.array(6.0, np.float32), "clip_max"),
        ],
        opset=17,
    )
    # The exporter's own value_info, symbolic like the outputs.
    built.graph.value_info.append(
        helper.make_tensor_value_info(
            "scores", TensorProto.FLOAT, ["batch", 1, "sequence_length", TOTAL]
        )
    )
    return built


DIMS = {"sequence_length": NEW, "past_sequence_length": PAST}


@pytest.mark.parametrize("whole_model", [False, True])
def test_kv_cache_step_per_output(whole_model: bool) -> None:
    report = onnx_flow.audit(kv_cache_step(), dims=DIMS, whole_model=whole_model)
    # The head D -> V is judged apart by default: the logits' trunk ends at h3, and the
    # token id counts as the D that embed it; the whole model counts it one-hot.
    logits, token = (V, V) if whole_model else (D, D)
    figures = {o.name: (o.max_flow, o.reference) for o in report.outputs}
    assert figures == {
        # Everything reaches the logits through h3, D wide; R = the V logits, or h3.
        "logits": (D, logits),
        # The old cache (15 x 8) and the new key (8, from the token): 128 of 128.
        "present.0.key": ((PAST + NEW) * D, (PAST + NEW) * D),
        "present.0.value": ((PAST + NEW) * D, (PAST + NEW) * D),
    }
    assert dict(report.inputs) == {
        "input_ids": NEW * token,
        "past_key_values.0.key": PAST * D,
        "past_key_values.0.value": PAST * D,
        "attention_mask": PAST + NEW,
    }
    # All outputs: the cut {h, both caches, h3} = 8 + 120 + 120 + 8 (the mask reaches
    # only the logits, through h3), of 50 (or 8) + 120 + 120 + 16 given.
    assert (report.total.max_flow, report.total.reference) == (
        2 * D + 2 * PAST * D,
        token + 2 * PAST * D + PAST + NEW,
    )
    assert report.unknown == () and report.shape_fallbacks == ()


def test_expression_dims_follow_their_names() -> None:
    report = onnx_flow.audit(
        kv_cache_step(), dims={"sequence_length": 3, "past_sequence_length": 5}
    )
    grown = {o.name: o.reference for o in report.outputs}["present.0.key"]
    assert grown == (5 + 3) * D


def test_an_unbound_name_inside_an_expression_is_named() -> None:
    with pytest.raises(onnx_flow.AuditError, match="--dim past_sequence_length=N"):
        onnx_flow.audit(kv_cache_step(), dims={"sequence_length": 1})


def test_a_loop_body_reading_an_outer_value_counts_it_as_an_input() -> None:
    """x -> down (4) -> Loop whose body adds the outer 64-wide x: the skip goes around."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["carried", "x"], ["next"]),  # x from the outer scope
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("carried", TensorProto.FLOAT, [1, 64]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("next", TensorProto.FLOAT, [1, 64]),
        ],
    )
    nodes = [
        helper.make_node("MatMul", ["x", "down.w"], ["down"]),
        helper.make_node("MatMul", ["down", "up.w"], ["up"]),
        helper.make_node("Loop", ["trips", "", "up"], ["y"], body=body),
    ]
    built = model(
        nodes,
        [("x", TensorProto.FLOAT, [1, 64])],
        [("y", TensorProto.FLOAT, [1, 64])],
        [
            weight("down.w", 64, 4),
            weight("up.w", 4, 64),
            numpy_helper.from_array(np.array(2, np.int64), "trips"),
        ],
    )
    report = onnx_flow.audit(built)
    assert (report.total.max_flow, report.total.reference) == (64, 64)
    assert {b.tensor for b in report.bypassed} == {"down"}
