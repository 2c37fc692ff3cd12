"""Quantized models: int8, uint8 and int4 activations count their bits in ``bits``.

Each model is built by hand with the quantization ops; the expected figures are the
bit widths of the narrowest cross-section, computed in the comments.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from tests.onnx_builders import model

F32 = 32


def _const(name: str, value, dtype) -> TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def static_matmul() -> onnx.ModelProto:
    """x (64 floats) -> uint8 -> QLinearMatMul to 4 uint8 -> float -> MatMul to 64 floats."""
    n = helper.make_node
    return model(
        [
            n("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
            n("QLinearMatMul", ["xq", "s", "zp", "w", "ws", "wzp", "s", "zp"], ["yq"]),
            n("DequantizeLinear", ["yq", "s", "zp"], ["y"]),
            n("MatMul", ["y", "up"], ["out"]),
        ],
        [("x", TensorProto.FLOAT, [1, 64])],
        [("out", TensorProto.FLOAT, [1, 64])],
        [
            _const("s", 0.1, np.float32),
            _const("zp", 128, np.uint8),
            _const("w", np.ones((64, 4)), np.int8),
            _const("ws", 0.1, np.float32),
            _const("wzp", 0, np.int8),
            _const("up", np.ones((4, 64)), np.float32),
        ],
    )


def dynamic_matmul() -> onnx.ModelProto:
    """x (64 floats) -> DynamicQuantizeLinear (64 uint8, a float scale, a uint8 zero point)
    -> MatMulInteger -> int32 -> float, times the scale."""
    n = helper.make_node
    return model(
        [
            n("DynamicQuantizeLinear", ["x"], ["xq", "scale", "zero"]),
            n("MatMulInteger", ["xq", "w", "zero", "wzp"], ["acc"]),
            n("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
            n("Mul", ["accf", "scale"], ["out"]),
        ],
        [("x", TensorProto.FLOAT, [1, 64])],
        [("out", TensorProto.FLOAT, [1, 64])],
        [_const("w", np.ones((64, 64)), np.uint8), _const("wzp", 0, np.uint8)],
    )


def int4_activation() -> onnx.ModelProto:
    """x (64 floats) -> int4 -> float (opset 21)."""
    n = helper.make_node
    return model(
        [
            n("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
            n("DequantizeLinear", ["xq", "s", "zp"], ["out"]),
        ],
        [("x", TensorProto.FLOAT, [1, 64])],
        [("out", TensorProto.FLOAT, [1, 64])],
        [
            _const("s", 0.1, np.float32),
            helper.make_tensor("zp", TensorProto.INT4, [], [0]),
        ],
        opset=21,
    )


def static_conv() -> onnx.ModelProto:
    """x (3x8x8 floats) -> uint8 -> QLinearConv to 4x8x8 uint8 -> float -> 1x1 Conv to 3."""
    n = helper.make_node
    return model(
        [
            n("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
            n("QLinearConv", ["xq", "s", "zp", "w", "ws", "wzp", "s", "zp"], ["yq"], pads=[1] * 4),
            n("DequantizeLinear", ["yq", "s", "zp"], ["y"]),
            n("Conv", ["y", "mix"], ["out"]),
        ],
        [("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [("out", TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            _const("s", 0.1, np.float32),
            _const("zp", 128, np.uint8),
            _const("w", np.ones((4, 3, 3, 3)), np.int8),
            _const("ws", 0.1, np.float32),
            _const("wzp", 0, np.int8),
            _const("mix", np.ones((3, 4, 1, 1)), np.float32),
        ],
    )


CASES = {
    # elements: 4 of 64. bits: the 4 uint8 of yq, 32 bits, of 64 x 32 given.
    "static matmul": (static_matmul, (4, 64), (4 * 8, 64 * F32)),
    # elements: 64 + scale + zero point > 64, no squeeze. bits: 64 x 8 + 32 + 8 = 552.
    "dynamic matmul": (dynamic_matmul, (64, 64), (64 * 8 + F32 + 8, 64 * F32)),
    # bits: 64 int4 values.
    "int4": (int4_activation, (64, 64), (64 * 4, 64 * F32)),
    # elements: 192 in, 256 after the conv. bits: the 192 uint8 of xq, of 192 x 32.
    "static conv": (static_conv, (192, 192), (192 * 8, 192 * F32)),
}


@pytest.mark.parametrize("case", CASES)
def test_quantized_widths(case: str) -> None:
    build, elements, bits = CASES[case]
    for measure, (flow, reference) in (("elements", elements), ("bits", bits)):
        report = onnx_flow.audit(build(), measure=measure)
        assert (report.total.max_flow, report.total.reference) == (flow, reference), measure
