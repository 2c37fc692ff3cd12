"""The shape arithmetic computed with numpy gives what the ONNX reference evaluator
gives, dtype included, for each op and the attribute forms exporters write."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from onnx_flow.frontend import arithmetic

I64 = np.int64
CASES = [
    ("Unsqueeze", [np.array([3, 4], I64), np.array([0, -1], I64)], {}),
    ("Squeeze", [np.ones((1, 3, 1), I64), np.array([0], I64)], {}),
    ("Squeeze", [np.ones((1, 3, 1), I64)], {}),
    ("Gather", [np.array([2, 16, 768], I64), np.array(1, I64)], {"axis": 0}),
    ("Gather", [np.arange(12, dtype=I64).reshape(3, 4), np.array([-1, 0], I64)], {"axis": 1}),
    ("Concat", [np.array([1], I64), np.array([16, 12], I64)], {"axis": 0}),
    ("Cast", [np.array([16], I64)], {"to": TensorProto.FLOAT}),
    ("Cast", [np.array([2.7, -2.7], np.float32)], {"to": TensorProto.INT64}),
    ("Cast", [np.array([0, 3], I64)], {"to": TensorProto.BOOL}),
    ("Add", [np.array([16], I64), np.array(4, I64)], {}),
    ("Sub", [np.array([16, 3], I64), np.array([1, 5], I64)], {}),
    ("Mul", [np.array([12], I64), np.array(64, I64)], {}),
    ("Div", [np.array([7, -7, 6, -9], I64), np.array([2, 2, -4, -3], I64)], {}),
    ("Div", [np.array([2**62 + 1], I64), np.array([3], I64)], {}),
    ("Div", [np.array([16.0, 1.0], np.float32), np.array([3.0, 0.0], np.float32)], {}),
    ("Neg", [np.array([3, -4], I64)], {}),
    ("Equal", [np.array([1, -1, 3], I64), np.array(-1, I64)], {}),
    ("Less", [np.array([1, 5], I64), np.array(3, I64)], {}),
    ("LessOrEqual", [np.array([3, 5], I64), np.array(3, I64)], {}),
    ("Greater", [np.array([1.5, 5.0], np.float32), np.array(3.0, np.float32)], {}),
    ("GreaterOrEqual", [np.array([3, 2], I64), np.array([3, 3], I64)], {}),
    ("And", [np.array([True, True, False]), np.array([True, False, False])], {}),
    ("Or", [np.array([True, False, False]), np.array([False, False, True])], {}),
    ("Not", [np.array([True, False])], {}),
    ("Cos", [np.linspace(-4, 4, 9, dtype=np.float32)], {}),
    ("Sin", [np.linspace(-4, 4, 9, dtype=np.float32)], {}),
    ("Range", [np.array(0, I64), np.array(16, I64), np.array(3, I64)], {}),
    ("Range", [np.array(10, I64), np.array(-2, I64), np.array(-4, I64)], {}),
    ("Range", [np.array(5, I64), np.array(1, I64), np.array(1, I64)], {}),
    ("Range", [np.array(v, np.float32) for v in (0.5, 2.0, 0.25)], {}),
    ("Expand", [np.array([[1], [2]], I64), np.array([2, 3], I64)], {}),
    ("Expand", [np.array([1, 2, 3], I64), np.array([2, 1, 1], I64)], {}),
    ("Slice", [np.arange(10, dtype=I64), np.array([2], I64), np.array([-1], I64)], {}),
    ("Slice", [np.arange(10, dtype=I64), *map(np.atleast_1d, I64([-1, -(2**63), 0, -3]))], {}),
    (
        "Slice",
        [np.arange(24, dtype=I64).reshape(2, 3, 4), *I64([[1, 0], [2**63 - 1, 2], [-1, 1]])],
        {},
    ),
    ("Flatten", [np.arange(24, dtype=I64).reshape(2, 3, 4)], {}),
    ("Flatten", [np.arange(24, dtype=I64).reshape(2, 3, 4)], {"axis": -1}),
    ("Flatten", [np.arange(24, dtype=I64).reshape(2, 3, 4)], {"axis": 0}),
    ("Where", [np.array([True, False]), np.array([1, 2], I64), np.array(7, I64)], {}),
    ("Reshape", [np.arange(6, dtype=I64), np.array([0, -1], I64)], {}),
    ("Reshape", [np.arange(6, dtype=I64).reshape(2, 3), np.array([0, 3], I64)], {}),
    ("Reshape", [np.zeros((0, 3), I64), np.array([0, 3], I64)], {"allowzero": 1}),
    ("ConstantOfShape", [np.array([2, 3], I64)], {}),
    (
        "ConstantOfShape",
        [np.array([4], I64)],
        {"value": numpy_helper.from_array(np.array([7], I64))},
    ),
]


@pytest.mark.parametrize(("op", "inputs", "attributes"), CASES)
def test_numpy_gives_what_the_reference_evaluator_gives(op, inputs, attributes) -> None:
    names = [f"i{k}" for k in range(len(inputs))]
    node = helper.make_node(op, names, ["out"], **attributes)
    with np.errstate(divide="ignore"):
        expected = ReferenceEvaluator(node).run(None, dict(zip(names, inputs, strict=True)))[0]
    (computed,) = arithmetic.compute(node, inputs, None, limit=1000)
    assert computed.dtype == np.asarray(expected).dtype
    np.testing.assert_array_equal(computed, expected)


@pytest.mark.parametrize(("start", "end"), [(None, None), (1, None), (-2, None), (0, -1)])
def test_shape_reads_the_static_shape_with_start_and_end(start, end) -> None:
    attributes = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    node = helper.make_node("Shape", ["x"], ["s"], **attributes)
    shape = (1, 3, 640, 480)
    expected = ReferenceEvaluator(node).run(None, {"x": np.zeros(shape, np.uint8)})[0]
    np.testing.assert_array_equal(arithmetic.compute(node, [None], shape, 10)[0], expected)


def test_size_and_large_shapes_are_read_without_making_the_tensor() -> None:
    huge = (2**20, 2**20, 2**10)  # 2**50 elements: never allocated
    (size,) = arithmetic.compute(helper.make_node("Size", ["x"], ["n"]), [None], huge, 10)
    assert int(size) == 2**50


def test_nothing_larger_than_the_limit_is_made() -> None:
    node = helper.make_node("ConstantOfShape", ["shape"], ["big"])
    assert arithmetic.compute(node, [np.array([2**31, 2**31], I64)], None, 65536) is None
    long = helper.make_node("Range", ["start", "limit", "delta"], ["r"])
    scalars = [np.array(0, I64), np.array(5 * 10**8, I64), np.array(1, I64)]
    assert arithmetic.compute(long, scalars, None, 65536) is None  # decided before making it
    wide = helper.make_node("Expand", ["x", "shape"], ["y"])
    assert (
        arithmetic.compute(wide, [np.ones(1, I64), np.array([2**31, 2**31], I64)], None, 64) is None
    )
    tiled = helper.make_node("Concat", ["a", "b"], ["c"], axis=0)
    assert arithmetic.compute(tiled, [np.zeros(40, I64), np.zeros(40, I64)], None, 64) is None


def test_ops_and_attributes_it_does_not_know_are_left_to_the_evaluator() -> None:
    mod = helper.make_node("Mod", ["a", "b"], ["c"])
    assert arithmetic.compute(mod, [np.array(7, I64), np.array(-2, I64)], None, 10) is None
    div = helper.make_node("Div", ["a", "b"], ["c"])
    assert arithmetic.compute(div, [np.array(7, I64), np.array(0, I64)], None, 10) is None
    still = helper.make_node("Range", ["start", "limit", "delta"], ["r"])
    assert (
        arithmetic.compute(still, [np.array(0, I64), np.array(4, I64), np.array(0, I64)], None, 10)
        is None
    )
    strings = helper.make_node("Cast", ["a"], ["b"], to=TensorProto.STRING)
    assert arithmetic.compute(strings, [np.array([1], I64)], None, 10) is None
    saturating = helper.make_node("Cast", ["a"], ["b"], to=TensorProto.FLOAT, saturate=0)
    assert arithmetic.compute(saturating, [np.array([1], I64)], None, 10) is None


def test_casting_infinity_to_an_integer_warns_nobody() -> None:
    node = helper.make_node("Cast", ["a"], ["b"], to=TensorProto.INT64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert arithmetic.compute(node, [np.array([np.inf], np.float32)], None, 10) is not None
