"""Textbook mistakes still fail by default, naming the layer an ML engineer points at:
judging a head apart never passes a squeeze that is no head.

Each model's figures are derived by hand in its docstring.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import onnx_flow
from models.reference import UNet
from onnx_flow.render.wording import advice
from tests.conftest import EXPORTERS

DYNAMO = {"dynamo": True, "torchscript": False}


@pytest.mark.slow  # exports with torch
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_a_unet_without_skips_fails_at_its_inner_layer(exporter: str) -> None:
    """The reference U-Net with its two skips cut: 3x32x32 -> enc1 8x32x32 (8192) ->
    enc2 16x16x16 (4096) -> inner 4x8x8 (256) -> up2 16x16x16 (4096) -> dec2 (4096) ->
    up1 8x32x32 (8192) -> dec1 3x32x32 (3072). Everything passes the inner 256 of 3072;
    widened, the inner layer lets the 3072 output through (every other tensor is at
    least 3072 wide): it needs 3072 / 64 positions = 48 channels."""
    report = onnx_flow.audit_module(
        UNet(skips=False), torch.randn(1, 3, 32, 32), dynamo=DYNAMO[exporter]
    )
    assert (report.total.max_flow, report.total.reference, report.heads) == (256, 3072, ())
    assert {t.module for t in report.total.on_cut} == {"inner.0", "inner.1"}
    assert advice(report.total) == [
        "inner.0 (Conv): 16 -> 4 channels, needs at least 48, or a skip around it (its"
        " input carries 4096)"
    ]


class Seq2Seq(nn.Module):
    """An LSTM encoder over 10 steps of 8 features whose last hidden state (16) alone
    seeds the decoder, which writes 10 steps of 8: 16 of 80 (the whole sequence must
    pass through the encoder's final state)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.LSTM(8, 16, batch_first=True)
        self.decoder = nn.LSTM(16, 8, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.encoder(x)
        steps = hidden.transpose(0, 1).expand(-1, x.shape[1], -1)
        out, _ = self.decoder(steps)
        return out


@pytest.mark.slow  # exports with torch
def test_an_lstm_seq2seq_fails_at_the_encoders_final_state() -> None:
    report = onnx_flow.audit_module(Seq2Seq(), torch.randn(1, 10, 8), dynamo=False)
    assert (report.total.max_flow, report.total.reference, report.heads) == (16, 80, ())
    assert {t.module for t in report.total.cut_near_inputs} == {"encoder"}
    assert report.bottleneck
