"""Trained models on real samples: the spectra the audit reports against numpy's own, in
float64, of activations this test computes itself."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onnx_flow
from onnx_flow.report import Report
from tests.samples import magika_features, magika_samples

WHEELS = Path(__file__).parents[1] / "corpus" / "wheels"
MAGIKA = WHEELS / "magika_standard_v3_3.onnx"
MAGIKA_SHAPES = {"bytes": [1, 2048]}

#: The last output of magika's first activation (GELU, tanh form, after the byte
#: embedding and Dense_0): 512 positions x 256 features for each file.
MAGIKA_ACTIVATION = "jax2tf_get_logits_/pjit_get_logits_/MagikaV2/ApplyActivation_0/Mul_5:0"

#: A singular value counts when above this fraction of the largest. The activations are
#: float32 computed by some 20 ops: their rounding lies near 1e-6 of the largest value
#: (eps32 = 1.2e-7 times a few); the directions the samples span lie far above it (the
#: smallest at 6e-2 of the largest for 200 files, 4e-3 for 500), those they do not far
#: below (4e-9, float64 rounding through the Gram). The count is checked to be the same
#: from 1e-4 to 1e-6.
RELATIVE_TOLERANCE = 1e-5


def _run(model: onnx.ModelProto, tensor: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """``tensor``'s values for each sample (samples x elements, float32): the model run in
    onnxruntime with ``tensor`` as its only output, 50 samples at a time."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    count = len(next(iter(feeds.values())))
    rows = []
    for start in range(0, count, 50):
        batch = {name: values[start : start + 50] for name, values in feeds.items()}
        (value,) = session.run(None, batch)
        rows.append(value.reshape(len(value), -1))
    return np.concatenate(rows)


def _centred_singular_values(activations: np.ndarray) -> np.ndarray:
    """The singular values, largest first, of the activations less their mean, float64.

    numpy's SVD of the Gram of the small side (the squares of the values, to float64's
    eps x the largest: values down to 1.5e-8 of the largest are kept, far below the
    tolerance): 15 times faster than of the 200 x 131,072 activations themselves.
    """
    centred = activations.astype(np.float64)
    centred -= centred.mean(axis=0)
    small = centred @ centred.T if len(centred) < centred.shape[1] else centred.T @ centred
    squares = np.linalg.svd(small, compute_uv=False, hermitian=True)
    values: np.ndarray = np.sqrt(np.clip(squares, 0, None))
    return values


def _rank(values: np.ndarray, relative: float = RELATIVE_TOLERANCE) -> int:
    return int((values > relative * values[0]).sum())


def _energy_rank(values: np.ndarray, energy: float) -> int:
    """The fewest of ``values`` (largest first) whose squares hold ``energy`` of the sum."""
    squares = values**2
    return int(np.argmax(np.cumsum(squares) >= energy * squares.sum())) + 1


class Audited(NamedTuple):
    report: Report
    model: onnx.ModelProto
    """What was audited: magika, or its front."""
    samples: np.ndarray
    size: int
    energy_error: float
    """How far a sketched energy rank may lie from the exact one, as a fraction."""


def _prefix(model: onnx.ModelProto, output: str) -> onnx.ModelProto:
    """The part of ``model`` that computes ``output`` from the graph's inputs."""
    inferred = onnx.shape_inference.infer_shapes(model)
    inputs = [i.name for i in model.graph.input]
    return onnx.utils.Extractor(inferred).extract_model(inputs, [output])


@pytest.fixture(
    scope="module",
    params=[
        pytest.param((200, "front", 0.01), id="front-200"),
        pytest.param((500, "whole", 0.01), id="whole-500", marks=pytest.mark.slow),
        # 1,500 rows in 4,096 sketched columns: the sketch's values spread (4.4% low).
        pytest.param((1500, "whole", 0.06), id="whole-1500", marks=pytest.mark.slow),
    ],
)
def magika_audit(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """magika audited by ``data`` at 0.99 on files of site-packages: by default its front
    (its 20 nodes from the bytes to the first activation: 200 files take some 10 s),
    slow: the whole model."""
    size, part, energy_error = request.param
    samples = magika_samples(size)
    path = tmp_path_factory.mktemp("magika") / "bytes.npz"
    np.savez(path, bytes=samples)
    model = onnx.load(MAGIKA)
    source = _prefix(model, MAGIKA_ACTIVATION) if part == "front" else model
    report = onnx_flow.audit(
        source, measure="data", inputs=str(path), input_shapes=MAGIKA_SHAPES, energy=0.99
    )
    return Audited(report, source, samples, size, energy_error)


def test_magika_features_strip_and_pad_each_end() -> None:
    padding = [256] * 1024
    found = magika_features(b"  ab\n")
    assert found.dtype == np.int32 and found.shape == (2048,)
    assert list(found[:1024]) == [97, 98, 10, *padding[3:]]
    assert list(found[1024:]) == [*padding[4:], 32, 32, 97, 98]
    # Of a long file only the first and last 4,096 bytes count, 1,024 kept at each end.
    data = b"\t" + bytes(range(256)) * 40 + b" \n"
    found = magika_features(data)
    assert list(found[:1024]) == list(data[1:1025])
    assert list(found[1024:]) == list(data[-1026:-2])


def test_magika_samples_are_files_of_many_packages() -> None:
    """The samples differ: most of magika's input is bytes, not its padding (256)."""
    samples = magika_samples(200)
    assert samples.shape == (200, 2048) and samples.dtype == np.int32
    assert len({row.tobytes() for row in samples}) >= 190
    assert 0 <= samples.min() and samples.max() <= 256
    assert (samples == 256).mean() < 0.5


def test_magika_activation_rank_is_numpys(magika_audit: Audited) -> None:
    report, model, samples, size, energy_error = magika_audit
    (found,) = [s for s in report.spectra if s.tensor == MAGIKA_ACTIVATION]
    # It is the last tensor of the module: what the activation hands on.
    last = [s for s in report.spectra if "/MagikaV2/ApplyActivation_0/" in s.tensor][-1]
    assert last.tensor == MAGIKA_ACTIVATION
    assert found.width == 512 * 256 and found.matrix == (size - 1, 512 * 256)
    assert found.sketched  # size x 131,072 values: above 2^24, folded into 4,096 columns
    values = _centred_singular_values(_run(model, MAGIKA_ACTIVATION, {"bytes": samples}))
    rank = _rank(values)
    # A clear gap: the same count over two orders of magnitude of tolerance.
    assert {_rank(values, relative) for relative in (1e-4, 1e-5, 1e-6)} == {rank}
    # Centred, no more than the distinct samples less one.
    assert rank <= len({row.tobytes() for row in samples}) - 1
    assert abs(found.rank - rank) <= 0.01 * rank, (found.rank, rank)
    # A sketch's energy rank is an estimate: it never caps, and lies near the exact one.
    energy_rank = _energy_rank(values[:rank], 0.99)
    assert abs(found.energy_rank - energy_rank) <= energy_error * energy_rank, (
        found.energy_rank,
        energy_rank,
    )
    assert not found.capped


def test_magika_spectra_are_consistent(magika_audit: Audited) -> None:
    report, _, _, size, _ = magika_audit
    assert report.samples == size and len(report.spectra) > 10
    for found in report.spectra:
        assert found.energy_rank <= found.rank, found
        assert found.rank <= size - 1, found  # centred: the mean takes one direction
        assert found.rank <= found.width, found
