"""Spectra known by construction, and every figure against numpy's SVD in float64."""

from __future__ import annotations

import math
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
from tests.runner import invoke

#: Singular values 8 x 2^-i: energy rank 4 at 0.99 and 5 at 0.999, stable rank 4/3,
#: effective rank 4 (the limits of the geometric series; 16 terms are within 1e-3).
HALVING = 8 * 2.0 ** -np.arange(16)


def _with_singular_values(
    values: np.ndarray, rows: int, columns: int, seed: int, *, centred: bool = False
) -> np.ndarray:
    """U diag(values) V^T with random orthonormal U (rows) and V (columns), float64;
    ``centred``: U orthogonal to the ones vector too, so every column has mean 0."""
    generator = np.random.default_rng(seed)
    left = generator.standard_normal((rows, len(values)))
    if centred:
        left -= left.mean(axis=0)
    left, _ = np.linalg.qr(left)
    right, _ = np.linalg.qr(generator.standard_normal((columns, len(values))))
    return (left * values) @ right.T


def _fraction(values: np.ndarray, k: int) -> float:
    squares = values.astype(np.float64) ** 2
    return float(squares[:k].sum() / squares.sum())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_halving_singular_values_give_the_known_figures(dtype) -> None:
    found = spectrum(_with_singular_values(HALVING, 16, 40, seed=0).astype(dtype))
    assert found.rank == 16
    assert (found.energy_rank(0.99), found.energy_rank(0.999)) == (4, 5)
    assert found.stable_rank == pytest.approx(4 / 3, abs=1e-6)
    assert found.effective_rank == pytest.approx(4.0, abs=0.05)


def test_a_zero_matrix_has_no_direction() -> None:
    found = spectrum(np.zeros((3, 5), np.float32))
    assert (found.rank, found.energy_rank(0.99), found.stable_rank, found.effective_rank) == (
        0,
        0,
        0.0,
        0.0,
    )


@settings(max_examples=80, deadline=None)
@given(
    rows=st.integers(1, 30),
    columns=st.integers(1, 120),
    rank=st.integers(1, 30),
    decay=st.floats(0.3, 1.0),
    energy=st.floats(0.05, 1.0),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_figures_agree_with_numpy_svd_in_float64(
    rows, columns, rank, decay, energy, dtype, seed
) -> None:
    rank = min(rank, rows, columns)
    values = decay ** np.arange(rank)
    matrix = _with_singular_values(values, rows, columns, seed).astype(dtype)
    exact = np.linalg.svd(matrix.astype(np.float64), compute_uv=False)
    found = spectrum(matrix)
    k = found.energy_rank(energy)
    assert k <= found.rank
    # The smallest k holding the fraction: k holds it, k - 1 does not (up to rounding).
    assert _fraction(exact, k) >= energy - 1e-9
    assert k == 1 or _fraction(exact, k - 1) < energy + 1e-9
    assert found.stable_rank == pytest.approx((exact**2).sum() / exact[0] ** 2, rel=1e-6)
    shares = exact[exact > 0] / exact.sum()
    assert found.effective_rank == pytest.approx(
        math.exp(-(shares * np.log(shares)).sum()), rel=1e-5
    )


def _layer(weight: np.ndarray) -> onnx.ModelProto:
    """x (16) -> MatMul by ``weight`` -> h (16) -> Relu -> y."""
    return model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
            helper.make_node("Relu", ["h"], ["y"], name="act"),
        ],
        [("x", TensorProto.FLOAT, [1, 16])],
        [("y", TensorProto.FLOAT, [1, 16])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )


def test_the_energy_rank_caps_a_trained_looking_layer(tmp_path: Path) -> None:
    layer = _layer(_with_singular_values(HALVING, 16, 16, seed=3))
    numerical = onnx_flow.audit(layer, measure="rank")
    capped = onnx_flow.audit(layer, measure="rank", energy=0.99)
    assert numerical.total.max_flow == 16 and not numerical.bottleneck
    assert (capped.total.max_flow, capped.total.reference) == (4, 16) and capped.bottleneck
    (entry,) = capped.to_dict()["spectra"]
    assert (entry["tensor"], entry["node"], entry["op"], entry["width"]) == (
        "h",
        "fc",
        "MatMul",
        16,
    )
    assert (entry["rank"], entry["energy_rank"], entry["energy"]) == (16, 4, 0.99)
    assert entry["stable_rank"] == pytest.approx(4 / 3, abs=1e-5)
    assert entry["effective_rank"] == pytest.approx(4.0, abs=0.05)
    # Without --energy the spectra still say where the layer narrows, at 0.99.
    assert numerical.to_dict()["spectra"][0]["energy_rank"] == 4
    path = tmp_path / "layer.onnx"
    onnx.save(layer, path)
    shown = invoke("audit", path, "--measure", "rank", "--energy", "0.999")
    assert shown.returncode == 1 and "energy rank at 0.999" in shown.stdout
    assert "max-flow 5 of 16" in shown.stdout


def _samples(tmp_path: Path, directions: int, seed: int) -> Path:
    """40 samples of x (16) spanning ``directions`` directions."""
    generator = np.random.default_rng(seed)
    basis = generator.standard_normal((directions, 16))
    x = (generator.standard_normal((40, directions)) @ basis).astype(np.float32)
    path = tmp_path / "samples.npz"
    np.savez(path, x=x)
    return path


def _through(narrow: int) -> onnx.ModelProto:
    """x (16) -> MatMul -> ``narrow`` -> MatMul -> y (16), random full-rank weights."""
    generator = np.random.default_rng(7)
    return model(
        [
            helper.make_node("MatMul", ["x", "down"], ["h"], name="down"),
            helper.make_node("MatMul", ["h", "up"], ["y"], name="up"),
        ],
        [("x", TensorProto.FLOAT, [1, 16])],
        [("y", TensorProto.FLOAT, [1, 16])],
        [
            numpy_helper.from_array(generator.standard_normal((16, narrow)).astype("f4"), "down"),
            numpy_helper.from_array(generator.standard_normal((narrow, 16)).astype("f4"), "up"),
        ],
    )


@pytest.mark.parametrize("energy", [None, 0.999999])
@pytest.mark.parametrize(("narrow", "expected"), [(16, (4, 4, False)), (2, (2, 4, True))])
def test_samples_decide_what_there_is_to_carry(
    tmp_path: Path, narrow: int, expected, energy
) -> None:
    samples = _samples(tmp_path, 4, seed=narrow)
    report = onnx_flow.audit(_through(narrow), measure="data", inputs=str(samples), energy=energy)
    assert (report.total.max_flow, report.total.reference, report.bottleneck) == expected
    measured = {s.tensor: s for s in report.spectra}
    assert measured["x"].rank == 4 and measured["x"].width == 16
    assert measured["h"].rank == min(4, narrow)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--energy", "0.9"], "needs --measure rank or data"),
        (["--measure", "rank", "--energy", "0"], "must be a fraction in (0, 1]"),
        (["--measure", "rank", "--energy", "1.5"], "must be a fraction in (0, 1]"),
        (["--measure", "rank", "--energy", "nan"], "must be a fraction in (0, 1]"),
    ],
)
def test_bad_energy_is_one_line(tmp_path: Path, flags: list[str], message: str) -> None:
    path = tmp_path / "layer.onnx"
    onnx.save(_layer(np.eye(16)), path)
    result = invoke("audit", path, *flags)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_energy_comes_from_the_project(tmp_path: Path) -> None:
    path = tmp_path / "layer.onnx"
    onnx.save(_layer(_with_singular_values(HALVING, 16, 16, seed=3)), path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.onnx-flow]\nmeasure = "rank"\nenergy = 0.99\n', encoding="utf-8"
    )
    result = invoke("audit", path, "--format", "json", cwd=tmp_path)
    assert result.returncode == 1
    assert '"energy": 0.99' in result.stdout and '"max_flow": 4' in result.stdout


WHEELS = Path(__file__).parents[1] / "corpus" / "wheels"
TRAINED = {
    "ch_PP-OCRv4_det_infer.onnx": {"x": (1, 3, 640, 640)},
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": {"x": (1, 3, 48, 192)},
    "magika_standard_v3_3.onnx": {"bytes": (1, 2048)},
    "silero_vad_16k_op15.onnx": {"input": (1, 512), "state": (2, 1, 128)},
}


def _weights(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers and ``Constant`` tensors by name, read by onnx."""
    held = {
        n.output[0]: numpy_helper.to_array(n.attribute[0].t)
        for n in graph.node
        if n.op_type == "Constant" and n.attribute[0].name == "value"
    }
    return {**held, **{t.name: numpy_helper.to_array(t) for t in graph.initializer}}


def _singular_values(node: onnx.NodeProto, weight: np.ndarray) -> np.ndarray:
    """The singular values of the map a weight defines, in float64, by numpy's SVD: a
    Conv's weight split into its groups' out x (in / groups x kernel) blocks."""
    groups = next((a.i for a in node.attribute if a.name == "group"), 1)
    blocks = weight.astype(np.float64).reshape(groups, weight.shape[0] // groups, -1)
    if node.op_type != "Conv":
        blocks = weight.astype(np.float64)[None]
    return np.sort(np.concatenate([np.linalg.svd(b, compute_uv=False) for b in blocks]))[::-1]


@pytest.mark.parametrize(
    "file",
    # The detector's 640 x 640 input takes seconds: slow, out of the quick loop.
    [
        pytest.param(f, marks=pytest.mark.slow) if f.startswith("ch_PP-OCRv4") else f
        for f in TRAINED
    ],
)
def test_trained_layers_energy_ranks_equal_an_independent_svd(file: str) -> None:
    """Weights of trained models shipped in PyPI wheels: every measured layer's energy
    rank at 0.99 is the one numpy's float64 SVD of the same weight gives."""
    path = WHEELS / file
    report = onnx_flow.audit(path, measure="rank", energy=0.99, input_shapes=TRAINED[file])
    graph = onnx.load(path).graph
    nodes = {n.name: n for n in graph.node}
    weights = _weights(graph)
    assert len(report.spectra) >= 3
    for entry in report.spectra:
        node = nodes[entry.node]
        values = _singular_values(node, weights[node.input[1]])
        held = np.cumsum(values**2) / (values**2).sum()
        assert entry.width == len(values)
        assert entry.energy_rank == int(np.searchsorted(held, 0.99)) + 1, entry.node
        assert entry.stable_rank == pytest.approx((values**2).sum() / values[0] ** 2, rel=1e-5)


def test_samples_with_halving_singular_values_give_the_known_figures(tmp_path: Path) -> None:
    path = tmp_path / "samples.npz"
    samples = _with_singular_values(HALVING, 40, 16, seed=5, centred=True)
    np.savez(path, x=samples.astype(np.float32))
    report = onnx_flow.audit(_layer(np.eye(16)), measure="data", inputs=str(path), energy=0.999)
    measured = {s.tensor: s for s in report.spectra}
    for name in ("x", "h"):  # h = x @ I
        found = measured[name]
        assert (found.width, found.rank, found.energy_rank, found.energy) == (16, 16, 5, 0.999)
        assert found.stable_rank == pytest.approx(4 / 3, abs=1e-4)
        assert found.effective_rank == pytest.approx(4.0, abs=0.05)
    assert report.inputs == (("x", 5),)  # the input is capped at its energy rank
