"""Trained models on real samples: the spectra the audit reports against numpy's own, in
float64, of activations this test computes itself."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from threadpoolctl import threadpool_limits

import onnx_flow
from onnx_flow.report import LayerSpectrum, Report
from tests.onnx_builders import model
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
#: smallest at 6e-2 of the largest for 200 files, 4e-3 for 500, 2.7e-3 for 1,500), those
#: they do not far below (4e-9 to 1e-8, float64 rounding through the Gram). The count is
#: checked to be the same from 1e-4 to 1e-6.
RELATIVE_TOLERANCE = 1e-5


def _run(
    model: onnx.ModelProto, tensors: list[str], feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Each tensor's values for each sample (samples x elements, float32): the model run
    in onnxruntime with ``tensors`` as its outputs, 50 samples at a time."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    del model.graph.output[:]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in tensors)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    count = len(next(iter(feeds.values())))
    rows: dict[str, list[np.ndarray]] = {tensor: [] for tensor in tensors}
    for start in range(0, count, 50):
        batch = {name: values[start : start + 50] for name, values in feeds.items()}
        for tensor, value in zip(tensors, session.run(tensors, batch), strict=True):
            rows[tensor].append(value.reshape(len(value), -1))
    return {tensor: np.concatenate(values) for tensor, values in rows.items()}


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
        pytest.param((500, "whole", 0.01), id="whole-500", marks=pytest.mark.long),
        # 1,500 rows in 4,096 sketched columns: the sketch's values spread, its energy
        # rank falls 3.3% low (1,306 against numpy's 1,350).
        pytest.param((1500, "whole", 0.06), id="whole-1500", marks=pytest.mark.long),
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


@pytest.mark.slow  # runs magika on 200 files: seconds
def test_magika_activation_rank_is_numpys(magika_audit: Audited) -> None:
    report, model, samples, size, energy_error = magika_audit
    (found,) = [s for s in report.spectra if s.tensor == MAGIKA_ACTIVATION]
    # It is the last tensor of the module: what the activation hands on.
    last = [s for s in report.spectra if "/MagikaV2/ApplyActivation_0/" in s.tensor][-1]
    assert last.tensor == MAGIKA_ACTIVATION
    assert found.width == 512 * 256 and found.matrix == (size - 1, 512 * 256)
    assert found.sketched  # size x 131,072 values: above 2^24, folded into 4,096 columns
    values = _centred_singular_values(
        _run(model, [MAGIKA_ACTIVATION], {"bytes": samples})[MAGIKA_ACTIVATION]
    )
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


@pytest.mark.slow  # runs magika on 200 files: seconds
def test_magika_spectra_are_consistent(magika_audit: Audited) -> None:
    report, _, _, size, _ = magika_audit
    assert report.samples == size and len(report.spectra) > 10
    for found in report.spectra:
        assert found.energy_rank <= found.rank, found
        assert found.rank <= size - 1, found  # centred: the mean takes one direction
        assert found.rank <= found.width, found


#: The shipped trained models and the input shapes the corpus audits them at.
TRAINED = {
    "magika_standard_v3_3.onnx": MAGIKA_SHAPES,
    "ch_PP-OCRv4_det_infer.onnx": {"x": [1, 3, 640, 640]},
    "ch_PP-OCRv4_rec_infer.onnx": {"x": [1, 3, 48, 320]},
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": {"x": [1, 3, 48, 192]},
}


@functools.cache
def _gaussian_energy_rank(shape: tuple[int, int], energy: float, seeds: int = 5) -> int:
    """The median, over ``seeds`` seeded Gaussian matrices of ``shape``, of their energy
    rank at ``energy`` by numpy's SVD (on one thread: OpenBLAS's two threads took 10
    times as long on a busy machine)."""
    with threadpool_limits(1):
        ranks = [
            _energy_rank(
                np.linalg.svd(np.random.default_rng(seed).standard_normal(shape), compute_uv=False),
                energy,
            )
            for seed in range(seeds)
        ]
    return int(np.median(ranks))


@pytest.mark.parametrize("name", sorted(TRAINED))
def test_trained_weights_have_no_energy_rank_above_their_rank(name: str) -> None:
    report = onnx_flow.audit(WHEELS / name, measure="rank", input_shapes=TRAINED[name])
    assert len(report.spectra) >= 3
    for found in report.spectra:
        assert found.energy == 0.99  # reported at 0.99 when the caps are numerical ranks
        assert 0 < found.energy_rank <= found.rank <= found.width, found
        assert not found.capped  # no energy given: the numerical rank caps
    # The random baseline against Gaussian matrices of each dense map's shape: the
    # Marchenko-Pastur values hold for the sizes of trained layers (2 x 8 to 512 x 1280).
    # A grouped Conv's 1 x k blocks are left out: one random value per block is no law.
    dense = {found.matrix: found for found in report.spectra if found.blocks == 1}
    assert len(dense) >= 3
    for shape, found in dense.items():
        gaussian = _gaussian_energy_rank(shape, 0.99)
        assert abs(found.baseline_energy_rank - gaussian) <= max(2, 0.02 * gaussian), (
            shape,
            found.baseline_energy_rank,
            gaussian,
        )
        assert found.margin == found.baseline_energy_rank - found.energy_rank


def _planted_mlp(seed: int = 0) -> tuple[onnx.ModelProto, str]:
    """x (64) -> MatMul layers of Gaussian weights, 64 x 64, 64 x 256, 256 x 300, a
    planted 300 x 300 of rank 8 (A @ B), 300 x 300, 300 x 64, each but the last followed
    by a Relu -> y (64); and the planted layer's output."""
    rng = np.random.default_rng(seed)
    shapes = [(64, 64), (64, 256), (256, 300), None, (300, 300), (300, 64)]
    nodes, weights, x = [], [], "x"
    for i, shape in enumerate(shapes):
        if shape is None:  # the planted layer
            weight = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 300))
        else:
            weight = rng.standard_normal(shape) / np.sqrt(shape[0])
        weights.append(onnx.numpy_helper.from_array(weight.astype(np.float32), f"w{i}"))
        nodes.append(onnx.helper.make_node("MatMul", [x, f"w{i}"], [f"h{i}"], name=f"fc{i}"))
        x = f"h{i}"
        if i < len(shapes) - 1:
            nodes.append(onnx.helper.make_node("Relu", [x], [f"a{i}"], name=f"act{i}"))
            x = f"a{i}"
    nodes.append(onnx.helper.make_node("Identity", [x], ["y"], name="out"))
    built = model(
        nodes,
        [("x", onnx.TensorProto.FLOAT, ["batch", 64])],
        [("y", onnx.TensorProto.FLOAT, ["batch", 64])],
        weights,
    )
    return built, "h3"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_layers_are_never_capped_and_a_planted_low_rank_one_is(seed: int) -> None:
    built, planted = _planted_mlp(seed)
    report = onnx_flow.audit(built, measure="rank", energy=0.99)
    spectra = {found.tensor: found for found in report.spectra}
    assert set(spectra) == {f"h{i}" for i in range(6)}
    assert [name for name, found in spectra.items() if found.capped] == [planted]
    found = spectra[planted]
    assert found.energy_rank <= 8 and found.matrix == (300, 300)
    # numpy's figures for the stored weight: the float32 rounding of A @ B leaves values
    # near 1e-7 of the largest, below 1e-5; 8 values above it, a clear gap.
    (stored,) = [w for w in built.graph.initializer if w.name == "w3"]
    values = np.linalg.svd(onnx.numpy_helper.to_array(stored).astype(np.float64), compute_uv=False)
    assert _rank(values, 1e-5) == _rank(values, 1e-3) == found.rank == 8
    assert found.energy_rank == _energy_rank(values[:8], 0.99)
    # The random layers: at most 2 below their random baseline, far from the margin.
    for name, other in spectra.items():
        if name != planted:
            assert other.rank == min(other.matrix) and other.margin <= 2, other
    assert report.bottleneck
    assert report.total.max_flow == found.energy_rank
    assert [t.tensor for t in report.total.cut_near_inputs] == [planted]
    assert [t.node for t in report.total.cut_near_inputs] == ["fc3"]


#: AdamW's decoupled weight decay for the digits net's collapsed twin: each step scales
#: every weight by 1 - 1e-2 x 70 = 0.3 before Adam's. The hidden layer keeps some 15
#: directions at 0.99, the logits 5 of 10 (seeds 0 to 2 alike; 6 at 50, 8 at 30, 9
#: without); train accuracy falls to about 0.7.
COLLAPSING_DECAY = 70.0


class Digits(NamedTuple):
    accuracy: float
    hidden: np.ndarray
    """The hidden ReLU's values for each digit, by torch."""
    report: Report


@pytest.fixture(scope="module")
def digits_nets(tmp_path_factory: pytest.TempPathFactory):
    """Return ``net(weight_decay) -> Digits``: an MLP 64 -> 128 (ReLU) -> 10 trained on
    the digits by full-batch AdamW (300 steps), exported by TorchScript with a dynamic
    batch axis and audited by ``data`` at 0.99 on the digits, each once."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from models.reference import export_module
    from tests.samples import digits

    pixels, labels = digits()
    folder = tmp_path_factory.mktemp("digits")
    samples = folder / "digits.npz"
    np.savez(samples, x=pixels)
    done: dict[float, Digits] = {}

    def get(weight_decay: float) -> Digits:
        if weight_decay in done:
            return done[weight_decay]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small matrices: one thread is the fastest on a busy machine
        try:
            torch.manual_seed(0)
            net = torch.nn.Sequential(
                torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
            )
            optimiser = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=weight_decay)
            x, y = torch.from_numpy(pixels), torch.from_numpy(labels)
            for _ in range(300):
                optimiser.zero_grad()
                torch.nn.functional.cross_entropy(net(x), y).backward()
                optimiser.step()
            net.eval()
            with torch.no_grad():
                hidden = net[1](net[0](x)).numpy()
                accuracy = float((net(x).argmax(dim=1) == y).float().mean())
            path = export_module(
                net,
                (x[:1],),
                {"x": {0: "batch"}},
                folder / f"digits-{weight_decay}.onnx",
                dynamo=False,
                output="logits",
            )
        finally:
            torch.set_num_threads(threads)
        report = onnx_flow.audit(path, measure="data", inputs=str(samples), energy=0.99)
        done[weight_decay] = Digits(accuracy, hidden, report)
        return done[weight_decay]

    return get


def _spectra(report: Report) -> dict[str, LayerSpectrum]:
    return {found.tensor: found for found in report.spectra}


@pytest.mark.slow  # trains two classifiers: seconds
def test_a_digits_classifier_has_no_bottleneck(digits_nets) -> None:
    from tests.samples import digits

    trained = digits_nets(0.0)
    assert trained.accuracy >= 0.95
    report = trained.report
    assert report.samples == 1797
    spectra = _spectra(report)
    assert not spectra["logits"].capped and not report.bottleneck
    # Dead units: the hidden units torch never sees positive, the pixels always blank.
    (relu,) = [found for found in report.spectra if found.op == "Relu"]
    assert relu.dead_units == int((trained.hidden <= 0).all(axis=0).sum())
    pixels, _ = digits()
    assert spectra["x"].dead_units == int((pixels == pixels[0]).all(axis=0).sum()) == 3
    # The hidden layer's figures are numpy's for torch's values.
    values = _centred_singular_values(trained.hidden)
    assert relu.rank == _rank(values)
    assert relu.energy_rank == _energy_rank(values[: relu.rank], 0.99)


@pytest.mark.slow  # trains two classifiers: seconds
def test_a_weight_decayed_digits_classifier_collapses_to_a_bottleneck(digits_nets) -> None:
    trained, collapsed = digits_nets(0.0), digits_nets(COLLAPSING_DECAY)
    assert collapsed.accuracy < trained.accuracy
    before, after = _spectra(trained.report), _spectra(collapsed.report)
    (relu,) = [name for name, found in after.items() if found.op == "Relu"]
    assert after[relu].energy_rank <= before[relu].energy_rank // 2
    assert after["logits"].energy_rank <= before["logits"].energy_rank - 3
    assert after["logits"].capped
    # numpy agrees on the hidden layer's collapse.
    values = _centred_singular_values(collapsed.hidden)
    assert after[relu].energy_rank == _energy_rank(values[: _rank(values)], 0.99)
    report = collapsed.report
    assert report.bottleneck
    assert report.total.max_flow == after["logits"].energy_rank < report.total.reference
    nodes = {found.node for found in report.spectra if found.node}
    cut = report.total.cut_near_inputs
    assert cut and all(tensor.node in nodes for tensor in cut)


#: PP-OCRv4's recogniser, the width rapidocr feeds it, and its last two convolutions:
#: the SVTR neck's conv4 (3 x 3, 960 -> 60 channels over 40 positions: 2,400 values, the
#: corpus's cut) and the 1 x 1 conv after it (60 -> 120: 4,800).
RECOGNISER = WHEELS / "ch_PP-OCRv4_rec_infer.onnx"
RECOGNISER_SHAPES = {"x": [1, 3, 48, 320]}
RECOGNISER_CONVS = ("conv2d_207.tmp_0", "conv2d_208.tmp_0")


@pytest.mark.long  # 404 tensors measured: some 2 minutes for 100 lines (25 s for 16)
def test_pp_ocr_recogniser_on_digit_lines_ranks_as_numpy(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from tests.samples import digit_lines

    lines = 100
    images = digit_lines(lines)
    path = tmp_path / "lines.npz"
    np.savez(path, x=images)
    report = onnx_flow.audit(
        RECOGNISER, measure="data", inputs=str(path), input_shapes=RECOGNISER_SHAPES, energy=0.99
    )
    assert report.samples == lines and len(report.spectra) > 100
    for found in report.spectra:
        assert found.energy_rank <= found.rank <= min(found.width, lines - 1), found
    spectra = _spectra(report)
    values = _run(onnx.load(RECOGNISER), list(RECOGNISER_CONVS), {"x": images})
    for name in RECOGNISER_CONVS:
        found = spectra[name]
        assert found.op == "Conv" and not found.sketched
        own = _centred_singular_values(values[name])
        rank = _rank(own)
        assert {_rank(own, relative) for relative in (1e-4, 1e-5, 1e-6)} == {rank}
        assert abs(found.rank - rank) <= 0.01 * rank, (name, found.rank, rank)
        energy_rank = _energy_rank(own[:rank], 0.99)
        assert abs(found.energy_rank - energy_rank) <= 0.01 * energy_rank, (
            name,
            found.energy_rank,
            energy_rank,
        )
