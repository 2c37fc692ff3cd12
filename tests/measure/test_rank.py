"""The rank measure: linear maps capped at their weights' rank, known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from onnx_flow.measure.spectrum import spectrum
from tests.onnx_builders import model
from tests.runner import REPO, run

RNG = np.random.default_rng(0)


def _array(name: str, values: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(values.astype(np.float32), name)


def low_rank_mlp(rank: int = 3) -> onnx.ModelProto:
    """64 -> 64 -> 64; the first weight is (64 x rank) @ (rank x 64), the second full."""
    first = RNG.standard_normal((64, rank)) @ RNG.standard_normal((rank, 64))
    n = helper.make_node
    return model(
        [
            n("MatMul", ["x", "w1"], ["h"], name="fc1"),
            n("Relu", ["h"], ["r"], name="act"),
            n("MatMul", ["r", "w2"], ["y"], name="fc2"),
        ],
        [("x", TensorProto.FLOAT, [1, 64])],
        [("y", TensorProto.FLOAT, [1, 64])],
        [_array("w1", first), _array("w2", RNG.standard_normal((64, 64)))],
    )


def test_a_rank_3_weight_passes_3_directions() -> None:
    built = low_rank_mlp()
    assert onnx_flow.audit(built).total.max_flow == 64
    report = onnx_flow.audit(built, measure="rank")
    assert (report.total.max_flow, report.total.reference) == (3, 64)
    assert [(t.tensor, t.width) for t in report.total.cut_near_inputs] == [("h", 3)]


def test_a_low_rank_last_layer_falls_short_of_what_the_output_delivers() -> None:
    """The output spans 3 directions, but must deliver 64 values: R stays 64."""
    built = low_rank_mlp()
    built.graph.initializer[0].CopyFrom(_array("w1", RNG.standard_normal((64, 64))))
    low = RNG.standard_normal((64, 3)) @ RNG.standard_normal((3, 64))
    built.graph.initializer[1].CopyFrom(_array("w2", low))
    report = onnx_flow.audit(built, measure="rank")
    assert (report.total.max_flow, report.total.reference) == (3, 64)


def test_weights_in_external_data_are_read(tmp_path: Path) -> None:
    path = tmp_path / "mlp.onnx"
    onnx.save(low_rank_mlp(5), path, save_as_external_data=True, location="w.bin", size_threshold=0)
    assert onnx_flow.audit(path, measure="rank").total.max_flow == 5


def test_a_transposed_weight_keeps_its_rank() -> None:
    """Gemm with transB and a MatMul through a Transpose node: both rank 2."""
    weight = RNG.standard_normal((64, 2)) @ RNG.standard_normal((2, 32))  # 64 x 32, rank 2
    n = helper.make_node
    built = model(
        [
            n("Gemm", ["x", "wt"], ["g"], transB=1, name="gemm"),
            n("Transpose", ["wt"], ["w"], name="t"),
            n("MatMul", ["x", "w"], ["m"], name="mm"),
            n("Concat", ["g", "m"], ["y"], axis=1, name="cat"),
        ],
        [("x", TensorProto.FLOAT, [1, 64])],
        [("y", TensorProto.FLOAT, [1, 64])],
        [_array("wt", weight.T.copy())],
    )
    # Two parallel maps of rank 2 each: 4 directions of the 64.
    assert onnx_flow.audit(built, measure="rank").total.max_flow == 4


@pytest.mark.parametrize("groups", [1, 2])
def test_a_conv_weight_of_rank_2_per_group(groups: int) -> None:
    """x: 4x8x8; Conv to 4 channels, 3x3, padding 1; each group's weight has rank 2."""
    per_group_in = 4 // groups
    blocks = [
        RNG.standard_normal((4 // groups, 2)) @ RNG.standard_normal((2, per_group_in * 9))
        for _ in range(groups)
    ]
    weight = np.concatenate(blocks).reshape(4, per_group_in, 3, 3)
    built = model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1] * 4, group=groups, name="conv"),
            helper.make_node("Conv", ["c", "mix"], ["y"], name="mix"),  # 1x1, full rank
        ],
        [("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [_array("w", weight), _array("mix", RNG.standard_normal((4, 4, 1, 1)))],
    )
    report = onnx_flow.audit(built, measure="rank")
    # rank 2 per group at each of the 64 positions, then a full-rank mix; R = 256.
    assert (report.total.max_flow, report.total.reference) == (2 * groups * 64, 256)


def test_a_depthwise_conv_is_not_read_as_one_small_matrix() -> None:
    """Depthwise 3x3 over 16 channels: 16 blocks of rank 1, full at each position. Read
    as one 16 x 9 matrix it would look like rank 9."""
    built = model(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4, group=16, name="dw")],
        [("x", TensorProto.FLOAT, [1, 16, 4, 4])],
        [("y", TensorProto.FLOAT, [1, 16, 4, 4])],
        [_array("w", RNG.standard_normal((16, 1, 3, 3)))],
    )
    assert onnx_flow.audit(built, measure="rank").total.max_flow == 16 * 16


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 40),
    columns=st.integers(1, 300),
    rank=st.integers(0, 40),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    seed=st.integers(0, 2**16),
)
def test_the_gram_rank_agrees_with_numpy(rows, columns, rank, scale, seed) -> None:
    """The Gram-matrix rank equals numpy's SVD-based matrix_rank on float32 weights.

    The weight is built as U diag(s) V^T with its `rank` singular values in [1, 4] x scale:
    a product of Gaussian factors can be nearly singular (a square one often is), and
    then its rank is not the one it was built with."""
    generator = np.random.default_rng(seed)
    rank = min(rank, rows, columns)
    left, _ = np.linalg.qr(generator.standard_normal((rows, rank)))
    right, _ = np.linalg.qr(generator.standard_normal((columns, rank)))
    singular = generator.uniform(1.0, 4.0, rank) * scale
    weight = ((left * singular) @ right.T).astype(np.float32)
    assert spectrum(weight).rank == np.linalg.matrix_rank(weight) == rank


@pytest.mark.slow  # a process of its own on a terminal: seconds
def test_progress_shows_on_a_terminal_only(tmp_path: Path) -> None:
    """Under a pseudo-terminal the rank measure draws its progress on stderr; piped, no."""
    import os
    import pty
    import sys

    path = tmp_path / "mlp.onnx"
    onnx.save(low_rank_mlp(), path)
    command = [sys.executable, "-m", "onnx_flow", "audit", str(path), "--measure", "rank"]
    piped = run("audit", path, "--measure", "rank")
    assert piped.returncode == 1 and piped.stderr == ""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: its stdout and stderr are the terminal
        os.chdir(REPO)
        os.execv(sys.executable, command)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.waitpid(pid, 0)
    assert b"weight ranks" in shown


@pytest.mark.parametrize("per_axis", [False, True])
def test_a_dequantized_weight_counts_as_dequantized(per_axis: bool) -> None:
    """int8 weight q with zero point z: (q - z) has rank 2 though q itself has full rank."""
    low = RNG.integers(-3, 4, (64, 2)) @ RNG.integers(-3, 4, (2, 64))  # integer, rank 2
    zero = np.full(64 if per_axis else (), 5, np.int8)
    quantized = (np.clip(low, -100, 100) + zero).astype(np.int8)
    scale = np.full(64 if per_axis else (), 0.5, np.float32)
    n = helper.make_node
    built = model(
        [
            n("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=1, name="dq"),
            n("MatMul", ["x", "w"], ["h"], name="fc1"),
            n("MatMul", ["h", "w2"], ["y"], name="fc2"),
        ],
        [("x", TensorProto.FLOAT, [1, 64])],
        [("y", TensorProto.FLOAT, [1, 64])],
        [
            numpy_helper.from_array(quantized, "wq"),
            numpy_helper.from_array(scale, "ws"),
            numpy_helper.from_array(zero, "wz"),
            _array("w2", RNG.standard_normal((64, 64))),
        ],
    )
    assert np.linalg.matrix_rank(quantized.astype(np.float32)) > 2
    assert onnx_flow.audit(built, measure="rank").total.max_flow == 2
