"""What a bypassed tensor is: a layer, or plumbing that text, HTML and SARIF leave out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from tests.onnx_builders import model
from tests.runner import invoke

#: x is 4 positions x 16 features: 64 values a sample, all carried along the main path.
POSITIONS, FEATURES = 4, 16


def _constant(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


def _plumbing() -> onnx.ModelProto:
    """x[1, 4, 16] through a LayerNorm, a squeeze-excite gate, a dynamic QuantizeLinear,
    added noise and a residual adapter: each narrow branch read beside the 64-wide path.

    - LayerNorm (module ``norm``): mean and variance over the 16 features, 4 wide.
    - squeeze-excite (``se``): GlobalAveragePool over the 16 values of each of 4
      channels (4), Conv 4 -> 2 (2), Relu (2), Conv 2 -> 4 (4), Sigmoid (4),
      multiplied into the 64.
    - QuantizeLinear (``quant``): its scale is max |y| / 127, 1 wide.
    - RandomNormalLike of the variance (4) added to the 64.
    - adapter (``adapter.0``: MatMul 16 -> 2 and its bias, 4 x 2 = 8 wide; Relu in
      ``act``; ``adapter.2``: 2 -> 16) added back to the 64.
    """
    f32 = np.float32
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], "/norm/ReduceMean", axes=[-1]),
        helper.make_node("Sub", ["x", "mean"], ["centred"], "/norm/Sub"),
        helper.make_node("Mul", ["centred", "centred"], ["squared"], "/norm/Mul"),
        helper.make_node("ReduceMean", ["squared"], ["var"], "/norm/ReduceMean_1", axes=[-1]),
        helper.make_node("Add", ["var", "eps"], ["var_eps"], "/norm/Add"),
        helper.make_node("Sqrt", ["var_eps"], ["std"], "/norm/Sqrt"),
        helper.make_node("Div", ["centred", "std"], ["normed"], "/norm/Div"),
        helper.make_node("GlobalAveragePool", ["normed"], ["pooled"], "/se/GlobalAveragePool"),
        helper.make_node("Conv", ["pooled", "se1.w"], ["se1"], "/se/fc1/Conv"),
        helper.make_node("Relu", ["se1"], ["se1_relu"], "/se/Relu"),
        helper.make_node("Conv", ["se1_relu", "se2.w"], ["se2"], "/se/fc2/Conv"),
        helper.make_node("Sigmoid", ["se2"], ["gate"], "/se/Sigmoid"),
        helper.make_node("Mul", ["normed", "gate"], ["excited"], "/se/Mul"),
        helper.make_node("Abs", ["excited"], ["magnitude"], "/quant/Abs"),
        helper.make_node("ReduceMax", ["magnitude"], ["peak"], "/quant/ReduceMax", keepdims=0),
        helper.make_node("Div", ["peak", "levels"], ["scale"], "/quant/Div"),
        helper.make_node("QuantizeLinear", ["excited", "scale", "zero"], ["q"], "/quant/Q"),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"], "/quant/DQ"),
        helper.make_node("RandomNormalLike", ["var"], ["noise"], "/noise/RandomNormalLike"),
        helper.make_node("Add", ["dq", "noise"], ["y"], "/noise/Add"),
        helper.make_node("MatMul", ["y", "down.w"], ["down"], "/adapter/adapter.0/MatMul"),
        helper.make_node("Add", ["down", "down.b"], ["down_b"], "/adapter/adapter.0/Add"),
        helper.make_node("Relu", ["down_b"], ["act"], "/adapter/act/Relu"),
        helper.make_node("MatMul", ["act", "up.w"], ["up"], "/adapter/adapter.2/MatMul"),
        helper.make_node("Add", ["y", "up"], ["out"], "/Add"),
    ]
    constants = [
        _constant("eps", np.array(1e-5, f32)),
        _constant("se1.w", np.zeros((2, POSITIONS, 1), f32)),
        _constant("se2.w", np.zeros((POSITIONS, 2, 1), f32)),
        _constant("levels", np.array(127, f32)),
        _constant("zero", np.array(0, np.int8)),
        _constant("down.w", np.zeros((FEATURES, 2), f32)),
        _constant("down.b", np.zeros(2, f32)),
        _constant("up.w", np.zeros((2, FEATURES), f32)),
    ]
    shape = [1, POSITIONS, FEATURES]
    io = [("x", TensorProto.FLOAT, shape)]
    return model(nodes, io, [("out", TensorProto.FLOAT, shape)], constants)


#: Each narrow tensor's kind, width and the flow around it, derived by hand: the
#: 64-wide path x -> centred -> normed -> excited -> q -> dq -> y -> out never passes
#: through one, so 64 flows around each.
EXPECTED = {
    "mean": ("statistic", 4),
    "var": ("statistic", 4),
    "var_eps": ("statistic", 4),
    "std": ("statistic", 4),
    "pooled": ("gate", 4),
    "se1": ("gate", 2),
    "se1_relu": ("gate", 2),
    "se2": ("gate", 4),
    "gate": ("gate", 4),
    "peak": ("quantisation", 1),
    "scale": ("quantisation", 1),
    "noise": ("random", 4),
    "down": ("layer", 8),
    "down_b": ("layer", 8),
    "act": ("other", 8),
}


def test_each_narrow_tensor_has_its_kind() -> None:
    report = onnx_flow.audit(_plumbing())
    assert (report.total.max_flow, report.total.reference) == (64, 64)
    found = {b.tensor: (b.kind.value, b.width) for b in report.bypassed}
    assert found == EXPECTED
    assert {b.bypass for b in report.bypassed} == {64}


def test_a_module_is_one_row_from_what_it_reads_to_what_it_hands_on() -> None:
    """adapter.0's MatMul and bias Add are one row: it reads y (64) and hands on 8."""
    (layer,) = onnx_flow.audit(_plumbing()).bypassed_layers()
    assert (layer.layer, layer.ops, layer.tensors) == (
        "adapter.0",
        ("MatMul", "Add"),
        ("down", "down_b"),
    )
    assert (layer.inputs, layer.output, layer.bypass) == (64, 8, 64)


def test_text_and_html_list_only_the_layer_json_every_tensor(tmp_path: Path) -> None:
    path = tmp_path / "plumbing.onnx"
    onnx.save(_plumbing(), path)
    text = invoke("audit", path).stdout.splitlines()
    title = text.index("narrow layers bypassed by skips")
    assert text[title + 1].split() == ["layer", "op", "in", "->", "out", "flow", "around"]
    assert text[title + 2].split() == ["adapter.0", "MatMul+Add", "64", "->", "8", "64"]
    assert not text[title + 3 :] or not text[title + 3].startswith("  ")
    page = tmp_path / "plumbing.html"
    invoke("audit", path, "--format", "html", "--output", page)
    table = page.read_text().split("<h3>narrow layers bypassed by skips</h3>")[1]
    rows = table[: table.index("</table>")].split("<tr>")[2:]
    assert rows == ["<td>adapter.0</td><td>MatMul+Add</td><td>64 -&gt; 8</td><td>64</td></tr>"]
    report = json.loads(invoke("audit", path, "--format", "json").stdout)
    assert {b["tensor"]: (b["kind"], b["width"]) for b in report["bypassed"]} == EXPECTED
    down = next(b for b in report["bypassed"] if b["tensor"] == "down")
    assert down["reads"] == 64 and down["op"] == "MatMul"


def test_an_attention_mask_input_and_what_is_made_of_it_are_no_layers() -> None:
    """x[1, 4, 16] + (1 - float(mask)) * -1e9, mask[1, 4] of int64: 68 values in, 64 out;
    x alone carries the 64, so the mask (4) and each step from it are bypassed."""
    f32 = np.float32
    nodes = [
        helper.make_node("Cast", ["mask"], ["as_float"], "/Cast", to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["as_float", "shape"], ["column"], "/Reshape"),
        helper.make_node("Sub", ["one", "column"], ["masked"], "/Sub"),
        helper.make_node("Mul", ["masked", "big"], ["bias"], "/Mul"),
        helper.make_node("Add", ["x", "bias"], ["out"], "/Add"),
    ]
    constants = [
        _constant("shape", np.array([1, POSITIONS, 1], np.int64)),
        _constant("one", np.array(1, f32)),
        _constant("big", np.array(-1e9, f32)),
    ]
    shape = [1, POSITIONS, FEATURES]
    io = [("x", TensorProto.FLOAT, shape), ("mask", TensorProto.INT64, [1, POSITIONS])]
    report = onnx_flow.audit(model(nodes, io, [("out", TensorProto.FLOAT, shape)], constants))
    assert (report.total.max_flow, report.total.reference) == (64, 64)
    assert {b.tensor: (b.kind.value, b.width, b.bypass) for b in report.bypassed} == {
        "mask": ("input", 4, 64),
        "as_float": ("mask", 4, 64),
        "column": ("mask", 4, 64),
        "masked": ("mask", 4, 64),
        "bias": ("mask", 4, 64),
    }
    assert report.bypassed_layers() == ()


def test_queries_and_keys_compute_logits_the_values_are_the_squeezed_branch() -> None:
    """One narrow attention head in a residual block on x[1, 4, 16] (64 values):
    q = x Wq, k = x Wk, v = x Wv (16 -> 8, 4 x 8 = 32 wide each), logits = q k^T
    (4 x 4 = 16), Softmax (16), context = weights v (4 x 8 = 32), o = context Wo
    (8 -> 16, 64), out = x + o. The skip carries 64 around the block.

    Below 64: q, k and k^T (32) are read only to compute the logits (k also by a Shape,
    as a rotary embedding reads x.shape[-1]: no values), so they are
    ``attention_logits``, as the logits and weights (16) are; v (32) is the layer that
    limits what the block reads; the context (32) mixes the weights and v: ``other``.
    One row: v_proj, 64 -> 32 (before: k_proj and q_proj were rows too, as with
    grouped-query attention, whose keys and values are both narrower than the stream).
    """
    f32 = np.float32
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], "/attn/q_proj/MatMul"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], "/attn/k_proj/MatMul"),
        helper.make_node("MatMul", ["x", "wv"], ["v"], "/attn/v_proj/MatMul"),
        helper.make_node("Shape", ["k"], ["k_shape"], "/attn/Shape"),
        helper.make_node("Transpose", ["k"], ["kt"], "/attn/Transpose", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["logits"], "/attn/MatMul"),
        helper.make_node("Softmax", ["logits"], ["weights"], "/attn/Softmax", axis=-1),
        helper.make_node("MatMul", ["weights", "v"], ["context"], "/attn/MatMul_1"),
        helper.make_node("MatMul", ["context", "wo"], ["o"], "/attn/o_proj/MatMul"),
        helper.make_node("Add", ["x", "o"], ["out"], "/Add"),
    ]
    constants = [
        _constant("wq", np.zeros((FEATURES, 8), f32)),
        _constant("wk", np.zeros((FEATURES, 8), f32)),
        _constant("wv", np.zeros((FEATURES, 8), f32)),
        _constant("wo", np.zeros((8, FEATURES), f32)),
    ]
    shape = [1, POSITIONS, FEATURES]
    io = [("x", TensorProto.FLOAT, shape)]
    report = onnx_flow.audit(model(nodes, io, [("out", TensorProto.FLOAT, shape)], constants))
    assert (report.total.max_flow, report.total.reference) == (64, 64)
    assert {b.tensor: (b.kind.value, b.width, b.bypass) for b in report.bypassed} == {
        "q": ("attention_logits", 32, 64),
        "k": ("attention_logits", 32, 64),
        "kt": ("attention_logits", 32, 64),
        "logits": ("attention_logits", 16, 64),
        "weights": ("attention_logits", 16, 64),
        "v": ("layer", 32, 64),
        "context": ("other", 32, 64),
    }
    (row,) = report.bypassed_layers()
    assert (row.layer, row.inputs, row.output, row.bypass) == ("attn.v_proj", 64, 32, 64)
