"""Layer paths from both PyTorch exporters' naming."""

from __future__ import annotations

import pytest

from onnx_flow.records import module_path


@pytest.mark.parametrize(
    ("scope", "module"),
    [
        ("['', 'enc', 'enc.2', 'linear_1']", "enc.2"),  # dynamo name_scopes
        ("['', 'model.transformer.h.0.ln_1', 'layer_norm']", "model.transformer.h.0.ln_1"),
        ("['', 'linear']", None),  # an op of the root module
        ("['', \"it's\", 'x']", "it's"),  # names with quotes still parse
        ("[not a list", None),
        ("/enc/enc.2/Gemm", "enc.2"),  # TorchScript: a container's child repeats its scope
        ("/dec.0/dec.0.0/Gemm", "dec.0.0"),
        ("/model/transformer/h.0/ln_1/LayerNormalization", "model.transformer.h.0.ln_1"),
        ("/Relu", None),
        ("mlp_1/squeeze_1/MatMul", "mlp_1/squeeze_1"),  # tf2onnx: Keras scopes
        ("text_1/embed_1/SelectV2__16", "text_1/embed_1"),
        ("linear_1.w_0", "linear_1"),  # paddle2onnx's weight names
        ("m.bert.encoder.layer.3.output.dense.weight", "m.bert.encoder.layer.3.output.dense"),
        ("coefficient", None),  # a weight name with no layer part
        # What a rewriting tool put before the name (spox, in silero-vad's files):
        ("F2::If_0_then_branch__Inline_0__/decoder/rnn/LSTM", "decoder.rnn"),
        ("If_0_then_branch__Inline_0__/encoder/1/reparam_conv/Conv", "encoder.1.reparam_conv"),
        ("F0::If_0_then_branch__Inline_0__encoder.0.reparam_conv.weight", "encoder.0.reparam_conv"),
        # A cast or an exporter's helper is no layer:
        ("auto.cast.95", None),  # paddle's mixed precision
        ("p2o.helper.constant.3", None),  # paddle2onnx
        ("helper.constant.12", None),
        ("p2o.pd_op.reshape.6.0", None),
        ("model_1/tf.cast_1/Cast", None),  # a Keras lambda layer around tf.cast
        ("['', 'model', 'model.autocast', 'to']", None),
        ("broadcaster.0.weight", "broadcaster.0"),  # whole parts only
        (None, None),
    ],
)
def test_module_path_from_exporter_scopes(scope: str | None, module: str | None) -> None:
    assert module_path(scope) == module


def test_a_finding_s_figures_cannot_change_and_travel_between_processes() -> None:
    import pickle

    from onnx_flow.report import Finding, FindingKind

    given = {"d": 768, "vocabulary": 50257}
    finding = Finding(FindingKind.SOFTMAX_BOTTLENECK, "m", "n", None, "t", given)
    given["d"] = 1  # the caller's dict is not the record's
    with pytest.raises(TypeError):
        finding.figures["d"] = 2  # type: ignore[index]
    assert dict(finding.figures) == {"d": 768, "vocabulary": 50257}
    assert pickle.loads(pickle.dumps(finding)) == finding
