"""The picture's layout helpers, on hand-placed boxes: the depth axis's labels and the
rows of the cut's labels."""

from __future__ import annotations

from onnx_flow.render.picture import Block, lanes, spaced


def _blocks(count: int) -> list[Block]:
    """Blocks ``h.0`` ... one every 10 depths."""
    return [Block(10 * i, f"h.{i}", i) for i in range(count)]


def test_blocks_far_apart_are_all_labelled() -> None:
    # 30 units between centres, labels 20 wide: 10 apart, the gap asked for.
    shown = spaced(_blocks(5), lambda d: 3.0 * d, lambda _: 20.0, gap=10, bounds=(-10, 200))
    assert [b.number for b in shown] == [0, 1, 2, 3, 4]


def test_crowded_blocks_are_labelled_at_a_regular_step() -> None:
    # 10 units between centres, labels 20 wide, 5 apart: a step of 2 leaves 0, and
    # a step of 5 leaves 30 between labels.
    shown = spaced(_blocks(12), lambda d: 1.0 * d, lambda _: 20.0, gap=5, bounds=(-10, 200))
    assert [b.number for b in shown] == [0, 5, 10]


def test_a_label_past_the_bounds_is_left_out_and_the_step_kept() -> None:
    shown = spaced(_blocks(4), lambda d: 3.0 * d, lambda _: 20.0, gap=10, bounds=(0, 200))
    assert [b.number for b in shown] == [1, 2, 3]  # h.0 would start at -10


def test_labels_stay_near_their_marks_in_as_few_rows_as_fit() -> None:
    # 40 wide each: the second (centre 30) touches the first (0..40 after clamping):
    # a second row; the third, far right, is clamped inside the right bound.
    placed = lanes([(10, 40), (30, 40), (195, 40)], gap=4, bounds=(0, 200))
    assert placed == [(0, 0), (10, 1), (160, 0)]
