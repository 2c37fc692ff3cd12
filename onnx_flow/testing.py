"""A helper for users' own test suites: fail a test when a module has a bottleneck.

from onnx_flow.testing import assert_no_bottleneck

def test_encoder_keeps_its_width():
    assert_no_bottleneck(Encoder(), torch.randn(1, 3, 32, 32), allow=["latent"])
"""

from __future__ import annotations

from typing import Any

from onnx_flow.pytorch import audit_module
from onnx_flow.render.wording import cut_layers, figures
from onnx_flow.report import Report

__all__ = ["assert_no_bottleneck"]


def assert_no_bottleneck(module: Any, example_args: Any, **options: Any) -> Report:
    """Audit ``module`` (see :func:`onnx_flow.audit_module`) and return the report.

    Raises:
        AssertionError: some output has a bottleneck; the message names each one's
            figures and narrowest layers.
    """
    report = audit_module(module, example_args, **options)
    squeezed = [output for output in report.outputs if output.bottleneck]
    if squeezed:
        details = "; ".join(
            f"{o.name}: {figures(o)}, narrowest layers {cut_layers(o)}" for o in squeezed
        )
        raise AssertionError(f"{report.model} has a bottleneck: {details}")
    return report
