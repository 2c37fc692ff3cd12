"""The ``data`` measure: a tensor passes no more directions than its activations span.

The model runs in onnxruntime on real samples (``--inputs samples.npz``: one array per
graph input, first axis = sample), in batches where the model takes them (checked
against single runs), once over the samples for every measured tensor. Each tensor's
activations over the samples form a samples x width matrix, **centred** by default (the
mean says nothing about which sample came in: the affine span of what the samples
make); its numerical rank (or, with an energy fraction, its energy rank where that is
clearly below the random baseline: :mod:`onnx_flow.measure.spectrum`) caps the tensor's
capacity, so no cap exceeds the number of samples.

As a batch comes, each tensor keeps what its spectrum needs, whichever is smaller: its
rows (samples x width, as fetched) or its columns' float64 Gram (width x width); the
spectrum comes from a float64 Gram either way. Beyond 2^24
values a tensor is **sketched**: its columns are folded into 4,096 by a count sketch
(each column added, with a seeded random sign, into one of 4,096 in a seeded random
order), whose Gram is unbiased; its rank equals the activations' for data in general
position, up to 4,096 (a sketch that fills its columns caps nothing); its energy
figures are estimates, so ``--energy`` never caps it. Each tensor's store is at most
128 MiB; the stores of one pass over the samples at most 1 GiB (more tensors take more
passes). A tensor that holds another's elements in another order or shape (Reshape,
Transpose, ...) has its singular values: it is measured once.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterator, Mapping
from typing import NamedTuple

import numpy as np

from onnx_flow.errors import AuditError, first_line
from onnx_flow.files import open_regular
from onnx_flow.frontend.dtypes import numpy_dtype
from onnx_flow.frontend.runtime import Runner
from onnx_flow.frontend.stored import Stored
from onnx_flow.measure import progress
from onnx_flow.measure.spectrum import Spectrum, from_gram, gram, tolerance
from onnx_flow.records import ShapedGraph
from onnx_flow.report import LayerSpectrum

__all__ = ["Samples", "caps", "load_samples"]

#: Values one tensor's exact store holds at most (rows, or the Gram); beyond, sketched.
_EXACT = 2**24

#: The columns a sketched tensor is folded into.
_SKETCH = 4096

#: Bytes the stores of one pass over the samples hold at most.
_PASS_BYTES = 2**30

#: Bytes of activations one batch may bring (float32 as fetched, float64 as sketched).
_BATCH_BYTES = 256 * 2**20

#: Ops whose output is their first input's elements in another order or shape.
_REARRANGING = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose"})

#: Samples run at once at most.
_MAX_BATCH = 64

#: A batched run agrees with single runs when each tensor differs by less than this
#: fraction of its norm (rounding differs with the batch; a mixed-up layout does not).
_BATCH_AGREEMENT = 1e-2


class Samples(NamedTuple):
    """The samples: one array per graph input, first axis = sample."""

    arrays: Mapping[str, np.ndarray]
    size: int
    """How many samples there are."""

    def feed(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The inputs of samples ``start`` to ``stop``, stacked along the first axis."""
        return {name: values[start:stop] for name, values in self.arrays.items()}


def load_samples(path: str, graph: ShapedGraph, limit: int) -> Samples:
    """The samples of each graph input, each sample of the input's bound shape; the
    archive's arrays may inflate to ``limit`` bytes at most (checked before any is read).

    Raises:
        AuditError: the file cannot be read, inflates beyond ``limit``, lacks an input,
            the shapes disagree, a sample is not finite, or every sample is all zeros.
    """
    try:
        with open_regular(path) as handle:  # a FIFO is refused, not waited on
            if not zipfile.is_zipfile(handle):  # numpy would call it pickled data
                raise ValueError("not a zip archive")
            handle.seek(0)
            archive = np.load(handle, allow_pickle=False)
            inflated = sum(member.file_size for member in archive.zip.infolist())
            if inflated > limit:
                raise AuditError(
                    f"--inputs {path}: its arrays inflate to {inflated:,} bytes, above the"
                    f" limit of {limit:,} (--limit sample-bytes=N)"
                )
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise AuditError(f"--inputs {path}: cannot read it as .npz ({first_line(error)})") from None
    missing = [name for name in graph.inputs if name not in arrays]
    if missing:
        raise AuditError(f"--inputs {path}: no array for input {missing[0]!r}")
    counts = {arrays[name].shape[0] if arrays[name].ndim else 0 for name in graph.inputs}
    if len(counts) != 1 or 0 in counts:
        raise AuditError(f"--inputs {path}: the inputs need the same number of samples (>0)")
    for name in graph.inputs:
        arrays[name] = _as_input(arrays[name], graph, name, path)
        if arrays[name].dtype.kind in "fc" and not np.isfinite(arrays[name]).all():
            raise AuditError(f"--inputs {path}: the samples of {name!r} hold NaN or Inf")
    for name in graph.inputs:
        shape = graph.types[name].shape if name in graph.types else None
        sample = (1, *arrays[name].shape[1:])
        if shape is not None and sample != tuple(shape):
            raise AuditError(
                f"--inputs {path}: a sample of {name!r} has shape {sample},"
                f" the model wants {tuple(shape)}"
            )
    if not any(arrays[name].any() for name in graph.inputs):
        raise AuditError(
            f"--inputs {path}: every sample is all zeros: the samples carry no information"
        )
    return Samples({name: arrays[name] for name in graph.inputs}, counts.pop())


def _as_input(array: np.ndarray, graph: ShapedGraph, name: str, path: str) -> np.ndarray:
    """The samples of input ``name`` in its element type: floats of another width are
    converted (numpy makes float64 by default), any other kind of difference refused.

    Raises:
        AuditError: the samples are not of the input's kind (float, integer, bool).
    """
    tensor = graph.types.get(name)
    wanted = numpy_dtype(tensor) if tensor is not None else None
    if wanted is None or array.dtype == wanted:
        return array
    if array.dtype.kind == "f" and wanted.kind == "f":
        return array.astype(wanted)
    raise AuditError(
        f"--inputs {path}: samples of {name!r} are {array.dtype}, the model wants {wanted}"
    )


def caps(
    graph: ShapedGraph,
    stored: Stored,
    samples: Samples,
    energy: float | None = None,
    centred: bool = True,
) -> tuple[dict[str, int], list[LayerSpectrum]]:
    """Tensor -> the rank of its activations over the samples (numerical, or the energy
    rank holding ``energy`` where that is clearly below the random baseline), and each
    measured tensor's spectrum, in graph order.

    Raises:
        AuditError: onnxruntime cannot run the model on the samples.
    """
    depths = _depths(graph)
    shapes = _measured(graph)
    sources = _sources(graph, shapes)
    stores = {
        name: _Activations(shapes[name], samples.size, depths.get(name, 0))
        for name in dict.fromkeys(sources.values())
    }
    passes = list(_passes(stores))
    measured: dict[str, Spectrum] = {}
    for number, names in enumerate(passes, start=1):
        try:
            runner = stored.runner(names)
        except Exception as error:  # onnxruntime's errors: one line says why
            raise AuditError(f"onnxruntime cannot run the samples: {first_line(error)}") from None
        fetched = 8 * sum(stores[name].width for name in names)
        batch = max(1, min(samples.size, _MAX_BATCH, _BATCH_BYTES // fetched))
        if batch > 1 and not _batches_agree(runner, samples, stores, batch):
            batch = 1
        for start in range(0, samples.size, batch):
            stop = min(start + batch, samples.size)
            for name, value in _run(runner, samples.feed(start, stop)).items():
                stores[name].add(value, stop - start)
            progress.step(f"samples, pass {number} of {len(passes)}", stop, samples.size)
        for name in names:  # each pass's stores leave memory once measured
            store = stores[name]
            store.close()
            # onnxruntime gives each value per sample, none of them NaN or Inf
            if store.count == samples.size and math.isfinite(store.squares):
                measured[name] = store.spectrum(centred)
            store.release()
    found: dict[str, int] = {}
    spectra: list[LayerSpectrum] = []
    for name, source in sources.items():
        if source not in measured:
            continue
        store = stores[source]
        # A sketch's energy figures are estimates: its rank caps it, never its energy.
        capping = None if store.sketch is not None else energy
        if not store.saturated(measured[source]):
            found[name] = measured[source].cap(capping)
        spectra.append(
            measured[source].record(
                name,
                graph.producers.get(name),
                store.width,
                energy,
                dead_units=store.dead_units,
                dead_channels=store.dead_channels if shapes[name] == store.shape else None,
                sketched=store.sketch is not None,
                capped=measured[source].capped(capping),
            )
        )
    return found, spectra


class _CountSketch(NamedTuple):
    """A seeded count sketch of a tensor's columns into ``columns``: column ``order[i]``
    adds, times ``signs[i]``, into column ``i % columns`` (``order`` padded to a whole
    number of rounds, with sign 0). The random order matters: a fixed one (column j into
    j mod 4,096) folds a layout's related columns together, and magika's energy ranks
    came out 4% low at 200 samples, 15% at 1,500."""

    order: np.ndarray
    signs: np.ndarray
    columns: int

    @classmethod
    def of(cls, width: int, columns: int) -> _CountSketch:
        """The sketch of ``width`` columns (the same for the same width, run after run)."""
        rng = np.random.default_rng(width)
        padding = -width % columns
        order = np.concatenate([rng.permutation(width), np.zeros(padding, np.int64)])
        signs = rng.choice(np.array((-1.0, 1.0), np.float32), width)
        return cls(order, np.concatenate([signs, np.zeros(padding, np.float32)]), columns)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """The sketched rows (float64) of a samples x width float array."""
        picked = np.take(rows, self.order, axis=1) * self.signs  # exact: signs are +-1
        sketched: np.ndarray = picked.reshape(len(rows), -1, self.columns).sum(
            axis=1, dtype=np.float64
        )
        return sketched


class _Activations:
    """One tensor's activations over the samples, kept as they come as what gives their
    spectrum: the rows or the columns' Gram, of the activations or of their sketch."""

    def __init__(self, shape: tuple[int, ...], samples: int, depth: int) -> None:
        self.shape = shape
        self.width = math.prod(shape)
        self.depth = depth
        exact = self.width <= _SKETCH or samples * self.width <= _EXACT
        self.sketch = None if exact else _CountSketch.of(self.width, _SKETCH)
        self.columns = self.width if exact else _SKETCH
        # Activations kept whole stay float32 as onnxruntime gives them (float64 if it
        # gives that); a sketch's sums are float64.
        kept = np.float32 if exact else np.float64
        self.rows = np.zeros((samples, self.columns), kept) if samples < self.columns else None
        self.gram = None if self.rows is not None else np.zeros((self.columns, self.columns))
        self.total = np.zeros(self.columns)
        """The sum of the (sketched) activations (in the Gram's case, less ``origin``)."""
        self.origin: np.ndarray | None = None
        """The first batch's mean, which the Gram's rows are taken from (no cancellation
        of a large mean against small differences)."""
        self.squares = 0.0
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None
        self.count = 0
        self.dtype = np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        """The memory the store holds."""
        if self.rows is not None:
            return self.rows.nbytes
        return 8 * self.columns * self.columns

    def add(self, value: object, samples: int) -> None:
        """Take a batch of ``samples`` activations; ignore a value of another size."""
        if not isinstance(value, np.ndarray) or value.size != samples * self.width:
            return
        if value.dtype == np.float64:
            self.dtype = value.dtype
        rows = value.reshape(samples, self.width)
        if self.rows is not None and self.sketch is None:  # kept whole: see close()
            if rows.dtype == np.float64 and self.rows.dtype != np.float64:
                self.rows = self.rows.astype(np.float64)
            self.rows[self.count : self.count + samples] = rows
            self.count += samples
            return
        if rows.dtype.kind != "f" or rows.dtype.itemsize < 4:
            rows = rows.astype(np.float32 if rows.dtype.itemsize < 4 else np.float64)
        flat = rows.reshape(-1)
        squares = float(np.dot(flat, flat))
        if not math.isfinite(squares):  # float32 overflows before float64 does
            squares = float(np.einsum("i,i->", flat, flat, dtype=np.float64))
        self.squares += squares
        low, high = rows.min(axis=0), rows.max(axis=0)
        self.low = low if self.low is None else np.minimum(self.low, low)
        self.high = high if self.high is None else np.maximum(self.high, high)
        kept = self.sketch(rows) if self.sketch is not None else rows.astype(np.float64)
        if self.rows is not None:
            self.rows[self.count : self.count + samples] = kept
        else:
            assert self.gram is not None
            if self.origin is None:
                self.origin = kept.mean(axis=0)
            kept -= self.origin
            self.gram += kept.T @ kept
            self.total += kept.sum(axis=0)
        self.count += samples

    def close(self) -> None:
        """Once every batch is in: the sum of squares and each element's least and
        greatest value, of rows kept whole (the others are summed as they come)."""
        if self.rows is not None and self.sketch is None and self.count:
            rows = self.rows[: self.count]
            self.squares = float(np.einsum("ij,ij->", rows, rows, dtype=np.float64))
            self.low, self.high = rows.min(axis=0), rows.max(axis=0)

    def release(self) -> None:
        """Drop the rows or Gram once the spectrum is taken (the statistics stay)."""
        self.rows = self.gram = None

    def spectrum(self, centred: bool) -> Spectrum:
        """The spectrum of the activations (centred: of their differences from the mean)."""
        samples = self.count
        if self.rows is not None:
            rows = self.rows[:samples]
            matrix_gram = gram(rows, rows.mean(axis=0, dtype=np.float64) if centred else None)
        else:
            assert self.gram is not None and self.origin is not None
            mean = self.total / samples
            if centred:
                matrix_gram = self.gram - samples * np.outer(mean, mean)
            else:
                shift = self.origin
                matrix_gram = (
                    self.gram
                    + np.outer(shift, self.total)
                    + np.outer(self.total, shift)
                    + samples * np.outer(shift, shift)
                )
        limit = tolerance(math.sqrt(self.squares), self.dtype, self.depth)
        rows_measured = samples - 1 if centred else samples
        return from_gram(matrix_gram, limit, (max(rows_measured, 0), self.width))

    def saturated(self, spectrum: Spectrum) -> bool:
        """Whether a sketch's rank fills its columns: the activations' may be larger."""
        return self.sketch is not None and spectrum.rank >= self.columns

    @property
    def dead_units(self) -> int:
        """Elements whose value is the same for every sample."""
        if self.low is None or self.high is None:
            return 0
        return int((self.low == self.high).sum())

    @property
    def dead_channels(self) -> int | None:
        """Of an image tensor (N, C, H, W), the channels all of whose elements are dead."""
        if len(self.shape) != 4 or self.low is None or self.high is None:
            return None
        dead = (self.low == self.high).reshape(self.shape[1], -1)
        return int(dead.all(axis=1).sum())


def _measured(graph: ShapedGraph) -> dict[str, tuple[int, ...]]:
    """Carrying tensors with a static shape -> that shape (the batch bound to 1)."""
    shapes = {}
    for name in graph.carrying:
        shape = graph.static(name)
        if shape is not None and math.prod(shape) > 0:
            shapes[name] = shape
    return shapes


def _sources(graph: ShapedGraph, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, str]:
    """Measured tensor -> the measured tensor whose elements it holds in another order
    or shape (the same singular values: measured once), else itself."""
    sources: dict[str, str] = {}
    for name, shape in shapes.items():
        producer = graph.producers.get(name)
        first = producer.inputs[0] if producer is not None and producer.inputs else None
        rearranged = producer is not None and producer.is_standard(_REARRANGING)
        if rearranged and first in sources and math.prod(shapes[first]) == math.prod(shape):
            sources[name] = sources[first]
        else:
            sources[name] = name
    return sources


def _depths(graph: ShapedGraph) -> dict[str, int]:
    """Tensor -> the ops on its longest path from the graph's inputs and weights."""
    depths: dict[str, int] = {}
    for node in graph.nodes:
        depth = 1 + max((depths.get(name, 0) for name in node.inputs if name), default=0)
        for name in node.outputs:
            depths[name] = depth
    return depths


def _passes(stores: Mapping[str, _Activations]) -> Iterator[list[str]]:
    """Tensors in graph order, grouped so that one pass's stores fit the budget."""
    group: list[str] = []
    held = 0
    for name, store in stores.items():
        if group and held + store.nbytes > _PASS_BYTES:
            yield group
            group, held = [], 0
        group.append(name)
        held += store.nbytes
    if group:
        yield group


def _run(runner: Runner, feed: Mapping[str, np.ndarray]) -> dict[str, object]:
    """The runner's values for ``feed``.

    Raises:
        AuditError: onnxruntime cannot run it.
    """
    try:
        return runner.run(feed)
    except Exception as error:  # onnxruntime's errors: one line says why
        raise AuditError(f"onnxruntime cannot run the samples: {first_line(error)}") from None


def _batches_agree(
    runner: Runner, samples: Samples, stores: Mapping[str, _Activations], batch: int
) -> bool:
    """Whether a batch of samples gives every tensor's first and last sample as single
    runs do (a model whose batch dim is fixed, or that moves it, does not)."""
    try:
        together = runner.run(samples.feed(0, batch))
    except Exception:  # onnxruntime refuses the batch
        return False
    for index in (0, batch - 1):
        alone = _run(runner, samples.feed(index, index + 1))
        for name, value in alone.items():
            width = stores[name].width
            if not isinstance(value, np.ndarray) or value.size != width:
                continue
            batched = together.get(name)
            if not isinstance(batched, np.ndarray) or batched.size != batch * width:
                return False
            row = batched.reshape(batch, width)[index].astype(np.float64)
            single = value.reshape(width).astype(np.float64)
            if np.linalg.norm(row - single) > _BATCH_AGREEMENT * (np.linalg.norm(single) or 1):
                return False
    return True
