"""Widths: elements and bits, one-hot indices, shape-only tensors, unbound dims."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from onnx_flow.errors import AuditError
from onnx_flow.measure import widths
from onnx_flow.options import Measure, Options
from onnx_flow.pipeline import resolve
from onnx_flow.records import TensorType
from tests.onnx_builders import model, squeeze_mlp, weight
from tests.strategies import shaped_graph


def _widths(built, **options) -> widths.Widths:
    return resolve(built, Options.checked(**options))[1]


def test_batch_dim_is_bound_to_one() -> None:
    assert _widths(squeeze_mlp()).known == {"x": 64, "down": 4, "up": 64}


def test_an_untyped_index_on_the_way_to_a_table_is_unknown_not_an_error() -> None:
    """Indices walked back to a tensor no inference could type (a custom op's output)
    give that tensor's reason, as any untyped tensor does."""
    built = model(
        [
            helper.make_node("Mystery", ["ids"], ["t"], domain="com.example"),
            helper.make_node("Cast", ["t"], ["idx"], to=TensorProto.INT64),
            helper.make_node("Gather", ["table", "idx"], ["embedded"], name="embed"),
        ],
        [("ids", TensorProto.INT64, [1, 5])],
        [("embedded", TensorProto.FLOAT, [1, 5, 8])],
        [weight("table", 1000, 8)],
        domains=["com.example"],
    )
    found = _widths(built)
    assert "t" in found.unknown and found.known["ids"] == 5


def test_bits_multiply_elements_by_dtype_bits() -> None:
    found = _widths(squeeze_mlp(TensorProto.FLOAT16), measure=Measure.BITS)
    assert found.known == {"x": 64 * 16, "down": 4 * 16, "up": 64 * 16}


def test_embedding_indices_count_one_hot() -> None:
    table = weight("table", 1000, 8)
    built = model(
        [helper.make_node("Gather", ["table", "ids"], ["embedded"], name="embed")],
        [("ids", TensorProto.INT64, [1, 5])],
        [("embedded", TensorProto.FLOAT, [1, 5, 8])],
        [table],
    )
    found = _widths(built, whole_model=True)
    assert found.known == {"ids": 5 * 1000, "embedded": 5 * 8}
    assert found.one_hot == {"ids": 1000}
    # In bits, each index is a one-hot row of the table's dtype.
    assert _widths(built, measure=Measure.BITS, whole_model=True).known["ids"] == 5 * 1000 * 32


@pytest.mark.parametrize(("rows", "row", "per_id"), [(1000, 8, 8), (2, 8, 2), (30, 4 * 5, 20)])
def test_ids_count_as_what_embeds_them_by_default(rows: int, row: int, per_id: int) -> None:
    """min(V, d): a table of V rows of d values passes at most that many directions."""
    shape = (rows, 4, 5) if row == 20 else (rows, row)
    built = model(
        [helper.make_node("Gather", ["table", "ids"], ["embedded"], name="embed")],
        [("ids", TensorProto.INT64, [1, 5])],
        [("embedded", TensorProto.FLOAT, [1, 5, *shape[1:]])],
        [weight("table", *shape)],
    )
    found = _widths(built)
    assert found.known == {"ids": 5 * per_id, "embedded": 5 * row}
    assert found.one_hot == {"ids": rows}  # the vocabulary stays the finding's evidence
    assert _widths(built, measure=Measure.BITS).known["ids"] == 5 * per_id * 32


def _wrapped_ids() -> tuple[list, list]:
    """Keras 3's ``where(ids < 0, ids + V, ids)`` then a clip, before the Gather."""
    constants = [
        numpy_helper.from_array(np.array(0, np.int32), "zero"),
        numpy_helper.from_array(np.array(1000, np.int32), "vocabulary"),
        numpy_helper.from_array(np.array(999, np.int32), "last"),
    ]
    nodes = [
        helper.make_node("Less", ["ids", "zero"], ["negative"]),
        helper.make_node("Add", ["ids", "vocabulary"], ["shifted"]),
        helper.make_node("Where", ["negative", "shifted", "ids"], ["wrapped"]),
        helper.make_node("Clip", ["wrapped", "zero", "last"], ["clipped"]),
        helper.make_node("Gather", ["table", "clipped"], ["embedded"], name="embed"),
    ]
    return nodes, constants


def test_ids_wrapped_and_clipped_before_the_table_still_count_one_hot() -> None:
    nodes, constants = _wrapped_ids()
    built = model(
        nodes,
        [("ids", TensorProto.INT32, [1, 5])],
        [("embedded", TensorProto.FLOAT, [1, 5, 8])],
        [weight("table", 1000, 8), *constants],
    )
    found = _widths(built)
    assert found.one_hot == dict.fromkeys(["ids", "shifted", "wrapped", "clipped"], 1000)
    assert found.known["negative"] == 5  # a mask, not ids
    # ids 5 x 1000 one-hot -> 40 embedded values: the embedding is the flow, not the ids.
    report = onnx_flow.audit(built)
    assert (report.total.max_flow, report.total.reference) == (40, 40)


def test_shape_arithmetic_carries_no_sample_information() -> None:
    built = model(
        [
            helper.make_node("Shape", ["x"], ["shape"]),
            helper.make_node("Reshape", ["x", "shape"], ["y"]),
        ],
        [("x", TensorProto.FLOAT, [2, 3])],
        [("y", TensorProto.FLOAT, [2, 3])],
    )
    assert _widths(built).known == {"x": 6, "y": 6}


def test_unbound_symbolic_dim_names_the_dim_and_the_flag() -> None:
    built = model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [("x", TensorProto.FLOAT, ["batch", "sequence"])],
        [("y", TensorProto.FLOAT, ["batch", "sequence"])],
    )
    with pytest.raises(onnx_flow.AuditError, match=r"'sequence'.*--dim sequence=N") as raised:
        _widths(built)
    # A Python caller is told its own spelling too.
    assert str(raised.value).endswith("(dims={'sequence': N} in Python)")
    assert _widths(built, dims={"sequence": 7}).known == {"x": 7, "y": 7}


def test_width_unknown_to_shape_inference_is_listed_not_guessed() -> None:
    built = model(
        [
            helper.make_node("Relu", ["x"], ["h"]),
            helper.make_node("Custom", ["h"], ["c"], domain="example.custom"),
            helper.make_node("Add", ["c", "h"], ["y"]),
        ],
        [("x", TensorProto.FLOAT, [1, 8])],
        [("y", TensorProto.FLOAT, [1, 8])],
        domains=["example.custom"],
    )
    report = onnx_flow.audit(built)
    assert [u.tensor for u in report.unknown] == ["c"]
    assert report.total.max_flow == 8


def test_reshape_target_computed_by_range_is_folded() -> None:
    # Reshape's target comes from Range(Size(x)) arithmetic that data propagation skips.
    nodes = [
        helper.make_node("Size", ["x"], ["n"]),
        helper.make_node("Range", ["zero", "n", "one"], ["positions"]),
        helper.make_node("Shape", ["positions"], ["flat"]),
        helper.make_node("Reshape", ["x", "flat"], ["y"]),
    ]
    scalars = [
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one"),
    ]
    built = model(
        nodes, [("x", TensorProto.FLOAT, [2, 3])], [("y", TensorProto.FLOAT, [None])], scalars
    )
    assert _widths(built).known == {"x": 6, "y": 6}


def test_a_negative_dim_is_refused_not_measured() -> None:
    """-2 x -64 would multiply to 128: the shape is corrupt, whatever its product."""
    graph = shaped_graph(("x",), [], ("x",), {"x": 1})
    graph = dataclasses.replace(graph, types={"x": TensorType((-2, -64), "FLOAT", 32, False)})
    with pytest.raises(AuditError, match=r"tensor 'x' has a negative dim: \[-2, -64\]"):
        widths.compute(graph)
