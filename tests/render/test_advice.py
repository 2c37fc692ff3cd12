"""Advice in design terms and rows per layer: what a person reads of a cut.

Each expected line is derived by hand from the model's layers in its docstring.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from onnx_flow.render.wording import advice, cut_layers, cut_rows
from tests.conftest import EXPORTERS
from tests.onnx_builders import model


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_the_squeeze_needs_64_features_or_a_skip(exported, exporter: str) -> None:
    """64 -> 64 -> 4 -> 64: layer 2 maps 64 to 4; 64 must pass, its input has 64."""
    report = onnx_flow.audit(exported("squeeze", exporter))
    assert advice(report.total) == [
        "2 (Gemm): 64 -> 4 features, needs at least 64, or a skip around it (its input carries 64)"
    ]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_the_autoencoder_latent_then_its_encoder_limit(exported, exporter: str) -> None:
    """784 -> 128 -> 32 -> 128 -> 784: the latent enc.2 maps 128 to 32; widened, the
    128-wide enc.0 limits next, so the latent needs 128 (784 would not pass enc.0)."""
    (latent, then) = advice(onnx_flow.audit(exported("autoencoder", exporter)).total)
    assert latent == (
        "enc.2 (Gemm): 128 -> 32 features, needs at least 128, or a skip around it"
        " (its input carries 128)"
    )
    assert then.startswith("beyond that, enc.0 (") and then.endswith("limits (max-flow 128)")


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_a_language_model_whole_is_limited_by_its_residual_stream(exported, exporter) -> None:
    """GPT-2 against its logits: every block's residual sum carries 768 per position,
    16 x 768 of 16 x 50257: widening one layer gains nothing; d must reach 50257."""
    report = onnx_flow.audit(exported("gpt2", exporter), dims={"sequence": 16}, whole_model=True)
    (line,) = advice(report.total)
    assert line.startswith("the residual stream's width limits: ")
    assert "each carry 768 features per position" in line
    assert line.endswith("raise the model's width to at least 50257")
    assert not advice(onnx_flow.audit(exported("gpt2", exporter), dims={"sequence": 16}).total)


def _adapter_without_residual() -> onnx.ModelProto:
    """x[1, 8, 512] -> adapter.0 (MatMul 512 -> 16, + bias) -> adapter.1 (16 -> 512): the
    adapter squeezes 8 positions x 512 through 8 x 16 and nothing goes around it."""
    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [
        helper.make_node("MatMul", ["x", "w0"], ["m"], name="/adapter/adapter.0/MatMul"),
        helper.make_node("Add", ["m", "b0"], ["a"], name="/adapter/adapter.0/Add"),
        helper.make_node("MatMul", ["a", "w1"], ["y"], name="/adapter/adapter.1/MatMul"),
    ]
    return model(
        nodes,
        [("x", TensorProto.FLOAT, [1, 8, 512])],
        [("y", TensorProto.FLOAT, [1, 8, 512])],
        [weight("w0", 512, 16), weight("b0", 16), weight("w1", 16, 512)],
    )


def test_a_linear_is_one_row_and_needs_its_width_in_features() -> None:
    report = onnx_flow.audit(_adapter_without_residual())
    (row,) = cut_rows(report.total)  # the MatMul and its bias: two cuts as narrow
    assert (row.layer, row.ops, row.width) == ("adapter.0", ("MatMul", "Add"), 8 * 16)
    assert [t.tensor for t in row.tensors] == ["m", "a"]
    assert cut_layers(report.total) == "adapter.0 (MatMul+Add, 128)"
    assert advice(report.total) == [
        "adapter.0 (MatMul+Add): 512 -> 16 features, needs at least 512, or a skip around"
        " it (its input carries 4096)"
    ]


def test_an_input_with_a_slight_share_is_no_row() -> None:
    """audio[1, 256] and a sample rate sr[1, 1] concatenated: the flow is 257, the cut
    nearest the inputs {audio, sr}; sr carries 1 of 257 (0.4%): no row, JSON keeps it."""
    nodes = [helper.make_node("Concat", ["audio", "sr"], ["y"], axis=1, name="/mix/Concat")]
    inputs = [("audio", TensorProto.FLOAT, [1, 256]), ("sr", TensorProto.FLOAT, [1, 1])]
    report = onnx_flow.audit(model(nodes, inputs, [("y", TensorProto.FLOAT, [1, 257])]))
    assert report.total.max_flow == 257
    assert [t.tensor for t in report.total.cut_near_inputs] == ["audio", "sr"]
    assert [row.layer for row in cut_rows(report.total)] == ["audio", "mix"]


def test_a_convolution_needs_channels_and_its_norm_follows_it() -> None:
    """x[1, 16, 8, 8] -> squeeze (Conv 1x1, 16 -> 2) -> BatchNormalization -> expand
    (Conv 1x1, 2 -> 16): 2 x 64 = 128 of 1024 pass. The squeeze and its norm are both on
    the cut; the norm only passes the squeeze's channels on: one line, 16 channels."""
    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "k0"], ["s"], name="/squeeze/Conv"),
        helper.make_node(
            "BatchNormalization", ["s", "g", "b", "m", "v"], ["n"], name="/norm/BatchNormalization"
        ),
        helper.make_node("Conv", ["n", "k1"], ["y"], name="/expand/Conv"),
    ]
    norm = [weight(name, 2) for name in ("g", "b", "m")] + [
        numpy_helper.from_array(np.ones(2, np.float32), "v")
    ]
    report = onnx_flow.audit(
        model(
            nodes,
            [("x", TensorProto.FLOAT, [1, 16, 8, 8])],
            [("y", TensorProto.FLOAT, [1, 16, 8, 8])],
            [weight("k0", 2, 16, 1, 1), *norm, weight("k1", 16, 2, 1, 1)],
        )
    )
    assert (report.total.max_flow, report.total.reference) == (128, 1024)
    assert [row.layer for row in cut_rows(report.total)] == ["squeeze", "norm"]
    assert advice(report.total) == [
        "squeeze (Conv): 16 -> 2 channels, needs at least 16, or a skip around it (its"
        " input carries 1024)"
    ]
