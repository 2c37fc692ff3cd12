"""The ``data`` measure: a tensor passes no more directions than its activations span.

The model runs in onnxruntime on real samples (``--inputs samples.npz``: one array per
graph input, first axis = sample), one sample at a time. Each tensor's activations over
the samples form a samples x width matrix; its numerical rank (or, with an energy
fraction, its energy rank: :mod:`onnx_flow.measure.spectrum`) caps the tensor's
capacity, so no cap exceeds the number of samples. Tensors are measured in groups
small enough that one group's activations for all samples fit a fixed budget: never
every activation of every layer at once.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator

import numpy as np

from onnx_flow.errors import AuditError, first_line
from onnx_flow.files import open_regular
from onnx_flow.frontend.infer import numpy_dtype
from onnx_flow.frontend.stored import Stored
from onnx_flow.measure import progress
from onnx_flow.measure.spectrum import spectrum
from onnx_flow.records import ShapedGraph
from onnx_flow.report import LayerSpectrum

__all__ = ["caps", "load_samples"]

#: Activation values held at once: 2^25 values, 128 MiB in float32.
_BUDGET = 2**25


def load_samples(path: str, graph: ShapedGraph, limit: int) -> list[dict[str, np.ndarray]]:
    """One feed per sample, each input of the bound shape; the archive's arrays may
    inflate to ``limit`` bytes at most (checked before any is read).

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
    feeds = []
    for index in range(counts.pop()):
        feed = {}
        for name in graph.inputs:
            value = arrays[name][index : index + 1]
            shape = graph.types[name].shape if name in graph.types else None
            if shape is not None and tuple(value.shape) != tuple(shape):
                raise AuditError(
                    f"--inputs {path}: a sample of {name!r} has shape"
                    f" {tuple(value.shape)}, the model wants {tuple(shape)}"
                )
            feed[name] = value
        feeds.append(feed)
    if not any(arrays[name].any() for name in graph.inputs):
        raise AuditError(
            f"--inputs {path}: every sample is all zeros: the samples carry no information"
        )
    return feeds


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
    samples: list[dict[str, np.ndarray]],
    energy: float | None = None,
) -> tuple[dict[str, int], list[LayerSpectrum]]:
    """Tensor -> the rank of its activations over the samples (numerical, or the energy
    rank holding ``energy``), and each measured tensor's spectrum, in graph order.

    Raises:
        AuditError: onnxruntime cannot run the model on the samples.
    """
    widths = _widths(graph)
    found: dict[str, int] = {}
    spectra: list[LayerSpectrum] = []
    groups = list(_groups(widths, len(samples)))
    for number, group in enumerate(groups, start=1):
        try:
            runner = stored.runner(group)
            rows: dict[str, list[np.ndarray]] = {name: [] for name in runner.names}
            for index, feed in enumerate(samples, start=1):
                progress.step(
                    f"samples, tensor group {number} of {len(groups)}", index, len(samples)
                )
                for name, value in runner.run(feed).items():
                    if isinstance(value, np.ndarray):
                        rows[name].append(value.reshape(-1))
        except Exception as error:  # onnxruntime's errors: one line says why
            raise AuditError(f"onnxruntime cannot run the samples: {first_line(error)}") from None
        for name, values in rows.items():
            if len(values) == len(samples) and len({v.size for v in values}) == 1:
                measured = spectrum(np.stack(values))
                found[name] = measured.cap(energy)
                producer = graph.producers.get(name)
                spectra.append(measured.record(name, producer, widths[name], energy))
            del values
    return found, spectra


def _widths(graph: ShapedGraph) -> dict[str, int]:
    """Carrying tensors with a static shape -> elements per sample."""
    widths = {}
    for name in graph.carrying:
        tensor = graph.types.get(name)
        if tensor is not None and (elements := tensor.elements) is not None:
            widths[name] = elements
    return widths


def _groups(widths: dict[str, int], samples: int) -> Iterator[list[str]]:
    """Tensors in graph order, grouped so that a group's activations fit the budget."""
    group: list[str] = []
    held = 0
    for name, width in widths.items():
        if group and held + width * samples > _BUDGET:
            yield group
            group, held = [], 0
        group.append(name)
        held += width * samples
    if group:
        yield group
