"""The data measure: activations that lie in a known subspace give known caps."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from tests.onnx_builders import model
from tests.runner import invoke, run

RNG = np.random.default_rng(1)


def _two_layers(second_rank: int) -> onnx.ModelProto:
    """x (8) -> MatMul full rank -> h (8) -> MatMul of rank ``second_rank`` -> y (8)."""
    low = RNG.standard_normal((8, second_rank)) @ RNG.standard_normal((second_rank, 8))
    return model(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
            helper.make_node("MatMul", ["h", "w2"], ["y"], name="fc2"),
        ],
        [("x", TensorProto.FLOAT, ["batch", 8])],
        [("y", TensorProto.FLOAT, ["batch", 8])],
        [
            numpy_helper.from_array(RNG.standard_normal((8, 8)).astype(np.float32), "w1"),
            numpy_helper.from_array(low.astype(np.float32), "w2"),
        ],
    )


def _samples(tmp_path: Path, count: int, dimension: int) -> Path:
    """``count`` samples of x lying in a random ``dimension``-dimensional subspace."""
    basis = RNG.standard_normal((dimension, 8))
    x = (RNG.standard_normal((count, dimension)) @ basis).astype(np.float32)
    path = tmp_path / "samples.npz"
    np.savez(path, x=x)
    return path


def test_activations_in_a_2d_subspace_pass_2_directions(tmp_path: Path) -> None:
    samples = _samples(tmp_path, 20, 2)
    report = onnx_flow.audit(_two_layers(8), measure="data", inputs=str(samples))
    # x, h and y all span the same 2 directions: 2 of 2, no squeeze.
    assert (report.total.max_flow, report.total.reference) == (2, 2)
    assert not report.bottleneck and report.samples == 20


def test_a_layer_that_collapses_the_data_is_a_bottleneck(tmp_path: Path) -> None:
    samples = _samples(tmp_path, 20, 4)
    report = onnx_flow.audit(_two_layers(1), measure="data", inputs=str(samples))
    # The data spans 4 directions; fc2 (rank 1) leaves 1 of them.
    assert (report.total.max_flow, report.total.reference) == (1, 4)
    assert [t.tensor for t in report.total.cut_near_inputs] == ["y"]


def test_no_cap_exceeds_the_number_of_samples(tmp_path: Path) -> None:
    samples = _samples(tmp_path, 3, 8)
    # Centred, 3 samples span 2 directions around their mean; as they are, 3.
    report = onnx_flow.audit(_two_layers(8), measure="data", inputs=str(samples))
    assert report.total.max_flow == 2 and report.to_dict()["samples"] == 3
    assert report.to_dict()["centred"] is True
    raw = onnx_flow.audit(_two_layers(8), measure="data", inputs=str(samples), uncentred=True)
    assert raw.total.max_flow == 3 and raw.to_dict()["centred"] is False


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--measure", "data"], "--measure data and --inputs"),
        (["--measure", "data", "--inputs", "missing.npz"], "cannot read it as .npz"),
    ],
)
def test_bad_data_options_are_one_line(tmp_path: Path, flags: list[str], message: str) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_two_layers(8), path)
    result = invoke("audit", path, *flags)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_samples_that_are_no_regular_file_are_one_line(tmp_path: Path) -> None:
    """A FIFO is refused, not waited on for a writer, in every format."""
    fifo = tmp_path / "samples.npz"
    os.mkfifo(fifo)
    path = tmp_path / "m.onnx"
    onnx.save(_two_layers(8), path)
    result = run("audit", path, "--measure", "data", "--inputs", fifo)
    assert result.returncode == 2
    assert result.stderr.endswith(f"--inputs {fifo}: cannot read it as .npz (not a regular file)\n")
    assert len(result.stderr.splitlines()) == 1


def test_samples_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "samples.npz"
    np.savez(path, x=np.zeros((5, 7), np.float32))
    with pytest.raises(onnx_flow.AuditError, match="has shape"):
        onnx_flow.audit(_two_layers(8), measure="data", inputs=str(path))


def test_float64_samples_feed_a_float32_model(tmp_path: Path) -> None:
    """numpy makes float64 by default: such samples are converted, not refused."""
    wide = _samples(tmp_path, 20, 2)
    path = tmp_path / "float64.npz"
    np.savez(path, x=np.load(wide)["x"].astype(np.float64))
    report = onnx_flow.audit(_two_layers(8), measure="data", inputs=str(path))
    assert (report.total.max_flow, report.total.reference) == (2, 2)


def test_samples_of_another_kind_are_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ints.npz"
    np.savez(path, x=np.ones((5, 8), np.int64))
    model_path = tmp_path / "m.onnx"
    onnx.save(_two_layers(8), model_path)
    result = invoke("audit", model_path, "--measure", "data", "--inputs", path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "samples of 'x' are int64, the model wants float32" in result.stderr


def test_float64_samples_feed_a_trained_model_from_a_wheel(tmp_path: Path) -> None:
    """rapidocr's paddle2onnx classifier wants float32 images; numpy's float64 ones do."""
    model_path = (
        Path(__file__).parents[1] / "corpus" / "wheels" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
    )
    path = tmp_path / "images.npz"
    np.savez(path, x=RNG.standard_normal((3, 3, 48, 192)))
    report = onnx_flow.audit(
        model_path, measure="data", inputs=str(path), input_shapes={"x": (1, 3, 48, 192)}
    )
    assert report.samples == 3 and report.total.max_flow <= 3


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.full((5, 8), np.nan, np.float32), "the samples of 'x' hold NaN or Inf"),
        (np.full((5, 8), np.inf, np.float32), "the samples of 'x' hold NaN or Inf"),
        (np.zeros((5, 8), np.float32), "every sample is all zeros"),
    ],
)
def test_samples_that_carry_nothing_are_refused(
    tmp_path: Path, samples: np.ndarray, message: str
) -> None:
    """All-zero samples would make a squeeze pass (0 of 0); NaN made numpy's SVD fail."""
    path = tmp_path / "samples.npz"
    np.savez(path, x=samples)
    model_path = tmp_path / "m.onnx"
    onnx.save(_two_layers(1), model_path)
    result = invoke("audit", model_path, "--measure", "data", "--inputs", path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_an_archive_that_inflates_past_the_limit_is_refused_before_it_is_read(
    tmp_path: Path,
) -> None:
    """64 MiB of zeros compress to about 64 KiB: refused by what they would inflate to."""
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((2**21, 8), np.float32))
    assert path.stat().st_size < 2**20
    model_path = tmp_path / "m.onnx"
    onnx.save(_two_layers(8), model_path)
    flags = ["--measure", "data", "--inputs", path, "--limit", "sample-bytes=1000000"]
    result = invoke("audit", model_path, *flags)
    assert result.returncode == 2, result.stderr
    assert "inflate to 67,108,992 bytes, above the limit of 1,000,000" in result.stderr
    assert "(--limit sample-bytes=N)" in result.stderr


def test_a_file_that_is_no_archive_is_named_so(tmp_path: Path) -> None:
    """numpy calls any non-zip file 'pickled (object) data'."""
    path = tmp_path / "samples.npz"
    path.write_bytes(b"garbage, not a zip archive")
    model_path = tmp_path / "m.onnx"
    onnx.save(_two_layers(8), model_path)
    result = invoke("audit", model_path, "--measure", "data", "--inputs", path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "cannot read it as .npz (not a zip archive)" in result.stderr


def _moved_batch() -> onnx.ModelProto:
    """x (batch, 4, 2) -> Transpose to (4, batch, 2) -> times 2 -> y: the batch axis
    moves, so a batched run's rows are not its samples."""
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    return model(
        [
            helper.make_node("Transpose", ["x"], ["t"], name="move", perm=[1, 0, 2]),
            helper.make_node("Mul", ["t", "two"], ["y"], name="double"),
        ],
        [("x", TensorProto.FLOAT, ["batch", 4, 2])],
        [("y", TensorProto.FLOAT, [4, "batch", 2])],
        [two],
    )


def _fixed_batch() -> onnx.ModelProto:
    """x (batch, 8) -> Reshape to (1, 8) -> MatMul -> y: only one sample at a time runs."""
    weight = numpy_helper.from_array(RNG.standard_normal((8, 8)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, 8], np.int64), "shape")
    return model(
        [
            helper.make_node("Reshape", ["x", "shape"], ["r"], name="flat"),
            helper.make_node("MatMul", ["r", "w"], ["y"], name="fc"),
        ],
        [("x", TensorProto.FLOAT, ["batch", 8])],
        [("y", TensorProto.FLOAT, [1, 8])],
        [weight, shape],
    )


def test_a_model_that_moves_the_batch_axis_runs_one_sample_at_a_time(tmp_path: Path) -> None:
    # 30 samples on a 3-dimensional subspace of the 8 values: every tensor spans 3.
    basis = RNG.standard_normal((3, 8))
    x = (RNG.standard_normal((30, 3)) @ basis).reshape(30, 4, 2).astype(np.float32)
    path = tmp_path / "samples.npz"
    np.savez(path, x=x)
    report = onnx_flow.audit(_moved_batch(), measure="data", inputs=str(path))
    # y is 2x in another order, sample by sample: 3 directions; its rows mixed up
    # across samples, as a batched run gives them, span all 8.
    assert {s.tensor: s.rank for s in report.spectra} == {"x": 3, "t": 3, "y": 3}


def test_a_model_with_a_fixed_batch_runs_one_sample_at_a_time(tmp_path: Path) -> None:
    samples = _samples(tmp_path, 20, 5)
    report = onnx_flow.audit(_fixed_batch(), measure="data", inputs=str(samples))
    assert {s.tensor: s.rank for s in report.spectra} == {"x": 5, "r": 5, "y": 5}


def test_a_pass_whose_activations_outgrow_the_batch_budget_runs_one_sample_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Few samples let one pass hold many wide tensors; a single sample of them may
    then exceed what a batch may bring: it still runs, one sample at a time."""
    monkeypatch.setattr("onnx_flow.measure.data._BATCH_BYTES", 8)
    samples = _samples(tmp_path, 20, 3)
    report = onnx_flow.audit(_two_layers(8), measure="data", inputs=str(samples))
    assert (report.total.max_flow, report.total.reference) == (3, 3)
