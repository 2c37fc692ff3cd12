"""Real architectures from transformers configs give hand-derived figures, both exporters.

The figures are derived in ``models/architectures.py``: the language models show the
softmax bottleneck d / V, the image classifiers squeeze 3072 inputs into 32 features
for 100 labels.
"""

from __future__ import annotations

import pytest

import onnx_flow
from models.architectures import ARCHITECTURES, HIDDEN, VOCABULARY
from tests.conftest import EXPORTERS


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_architecture_gives_hand_derived_figures(exported, name: str, exporter: str) -> None:
    expected = ARCHITECTURES[name]
    report = onnx_flow.audit(exported(name, exporter), dims=expected.dims)
    assert (report.total.max_flow, report.total.reference) == (
        expected.max_flow,
        expected.reference,
    )
    assert report.bottleneck is expected.bottleneck
    assert report.unknown == ()
    whole = onnx_flow.audit(exported(name, exporter), dims=expected.dims, whole_model=True)
    assert (whole.total.max_flow, whole.total.reference) == expected.whole_figures


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", ["bert", "t5"])
def test_language_models_show_the_softmax_bottleneck(exported, name: str, exporter: str) -> None:
    expected = ARCHITECTURES[name]
    report = onnx_flow.audit(exported(name, exporter), dims=expected.dims, whole_model=True)
    assert report.total.ratio == pytest.approx(HIDDEN / VOCABULARY)
    # The cut lies on the hidden state of the last positions: d per token, no one-hot id.
    cut = report.total.cut_near_inputs
    assert cut and all(t.shape[-1] == HIDDEN for t in cut)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_resnet_cut_is_the_global_pooling(exported, exporter: str) -> None:
    report = onnx_flow.audit(exported("resnet", exporter))
    assert [(t.module, t.width) for t in report.total.cut_near_inputs] == [
        ("model.resnet.pooler", HIDDEN)
    ]
