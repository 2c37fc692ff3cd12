"""Widths that hold at any size, and the random baseline energy ranks are judged by.

Spectra are constructed with known singular values (U diag(s) V^T) at widths 64, 4,096
and 131,072; the baseline is checked against Gaussian matrices' own SVDs.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnx_flow
from onnx_flow.measure.spectrum import joined, random_values, spectrum
from tests.onnx_builders import model

#: 24 singular values falling from 8 to 8 x 2^-11.5 (2.8e-3 of the largest).
FALLING = 8 * 2.0 ** (-np.arange(24) / 2)

#: The widest takes seconds: slow, out of the quick loop.
WIDTHS = [64, 4096, pytest.param(131072, marks=pytest.mark.slow)]


def _energy_rank(values: np.ndarray, energy: float) -> int:
    held = np.cumsum(values**2)
    return int(np.searchsorted(held, energy * held[-1])) + 1


def _with_values(values: np.ndarray, rows: int, columns: int, *, centred: bool) -> np.ndarray:
    """U diag(values) V^T, float32, with U orthogonal to the ones vector if ``centred``."""
    generator = np.random.default_rng(rows + columns)
    left = generator.standard_normal((rows, len(values)))
    if centred:
        left -= left.mean(axis=0)
    left, _ = np.linalg.qr(left)
    right, _ = np.linalg.qr(generator.standard_normal((columns, len(values))))
    return ((left * values) @ right.T).astype(np.float32)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_weight_s_figures_are_exact_at_any_width(width: int) -> None:
    found = spectrum(_with_values(FALLING, 32, width, centred=False))
    # numpy's matrix_rank cut, 131072 x eps x 8 = 0.125 at the widest, drops 12 of them.
    assert found.rank == 24
    for energy in (0.9, 0.99, 0.999):
        assert found.energy_rank(energy) == _energy_rank(FALLING, energy)
    assert found.stable_rank == pytest.approx((FALLING**2).sum() / 64, rel=1e-5)


def _identity(width: int) -> onnx.ModelProto:
    return model(
        [helper.make_node("Relu", ["x"], ["y"], name="act")],
        [("x", TensorProto.FLOAT, ["batch", width])],
        [("y", TensorProto.FLOAT, ["batch", width])],
        [],
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_activations_figures_are_exact_at_any_width(width: int, tmp_path) -> None:
    # 40 samples whose differences from their mean have the known singular values.
    samples = _with_values(FALLING, 40, width, centred=True) + 3.0
    path = tmp_path / "samples.npz"
    np.savez(path, x=samples)
    report = onnx_flow.audit(_identity(width), measure="data", inputs=str(path))
    (measured,) = [s for s in report.spectra if s.tensor == "x"]
    assert (measured.width, measured.rank, measured.sketched) == (width, 24, False)
    assert measured.energy_rank == _energy_rank(FALLING, 0.99)
    assert measured.stable_rank == pytest.approx((FALLING**2).sum() / 64, rel=1e-4)
    assert measured.matrix == (39, width)


@pytest.mark.slow  # sketches a wide tensor: seconds
def test_a_sketched_tensor_keeps_its_rank(tmp_path) -> None:
    # 300 samples x 131,072 is beyond the exact store: the columns are count-sketched.
    samples = _with_values(FALLING, 300, 131072, centred=True)
    path = tmp_path / "samples.npz"
    np.savez(path, x=samples)
    report = onnx_flow.audit(_identity(131072), measure="data", inputs=str(path))
    (measured,) = [s for s in report.spectra if s.tensor == "x"]
    assert measured.sketched and measured.rank == 24
    assert abs(measured.energy_rank - _energy_rank(FALLING, 0.99)) <= 1
    assert measured.stable_rank == pytest.approx((FALLING**2).sum() / 64, rel=0.1)


SHAPES = [(8, 8), (16, 16), (64, 64), (64, 256), (256, 64), (300, 300), (128, 512)]


@pytest.mark.parametrize(("rows", "columns"), SHAPES)
def test_random_weights_are_never_capped(rows: int, columns: int) -> None:
    generator = np.random.default_rng(rows * columns)
    for draw in (generator.standard_normal, lambda shape: generator.uniform(-1, 1, shape)):
        for _ in range(20):
            found = spectrum(draw((rows, columns)).astype(np.float32))
            assert not found.capped(0.99) and not found.capped(0.9)
            assert found.cap(0.99) == found.rank == min(rows, columns)


@pytest.mark.parametrize(("rows", "columns"), [(64, 64), (64, 256), (300, 300), (128, 512)])
def test_the_baseline_is_what_gaussian_matrices_give(rows: int, columns: int) -> None:
    generator = np.random.default_rng(7)
    exact = [
        np.linalg.svd(generator.standard_normal((rows, columns)), compute_uv=False)
        for _ in range(9)
    ]
    baseline = random_values(rows, columns)
    for energy in (0.9, 0.99):
        ranks = sorted(_energy_rank(values, energy) for values in exact)
        assert abs(_energy_rank(baseline, energy) - ranks[4]) <= 1
    stable = np.median([(v**2).sum() / v[0] ** 2 for v in exact])
    assert (baseline**2).sum() / baseline[0] ** 2 == pytest.approx(stable, rel=0.05)


def test_a_low_rank_weight_is_capped_at_its_energy_rank() -> None:
    generator = np.random.default_rng(3)
    low = generator.standard_normal((64, 6)) @ generator.standard_normal((6, 64))
    noisy = low + 1e-3 * generator.standard_normal((64, 64))
    found = spectrum(noisy.astype(np.float32))
    assert found.rank == 64 and found.capped(0.99) and found.cap(0.99) <= 6


@pytest.mark.parametrize(("channels", "kernel"), [(96, 9), (192, 25), (64, 4)])
def test_a_depthwise_conv_s_baseline_is_what_random_filters_give(channels, kernel) -> None:
    generator = np.random.default_rng(channels)
    ranks = []
    for _ in range(21):
        norms = np.sort(np.linalg.norm(generator.standard_normal((channels, kernel)), axis=1))
        ranks.append(_energy_rank(norms[::-1], 0.99))
    blocks = joined(
        spectrum(generator.standard_normal((1, kernel)).astype(np.float32)) for _ in range(channels)
    )
    assert abs(_energy_rank(blocks.baseline, 0.99) - sorted(ranks)[10]) <= 1
