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
        (None, None),
    ],
)
def test_module_path_from_exporter_scopes(scope: str | None, module: str | None) -> None:
    assert module_path(scope) == module
