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
        (None, None),
    ],
)
def test_module_path_from_exporter_scopes(scope: str | None, module: str | None) -> None:
    assert module_path(scope) == module
