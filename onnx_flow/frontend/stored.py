"""The model as stored, for the measures that read weights or run it.

:class:`Stored` reads the file again with its inline weights (external data stays in
the model's folder, whose references :mod:`onnx_flow.frontend.external` checked) the
first time a weight or a run is asked for, and hands out numpy arrays and runners, so
that the measures never touch a protobuf.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

import numpy as np
import onnx
from onnx import external_data_helper, helper, numpy_helper

from onnx_flow.frontend import branches, external, load
from onnx_flow.frontend.nodes import constant_tensor
from onnx_flow.frontend.runtime import Runner
from onnx_flow.report import Branch

__all__ = ["Stored"]


class Stored:
    """Weights and runs of the model at ``source``, read when first asked for, with the
    ``If`` branches the audit ``followed`` taken."""

    def __init__(
        self, source: str | os.PathLike[str] | onnx.ModelProto, followed: Iterable[Branch] = ()
    ) -> None:
        self._source = source
        self._followed = tuple(followed)

    @functools.cached_property
    def _model(self) -> tuple[onnx.ModelProto, Path | None]:
        """The model read again with its inline weights; its external-data references
        checked, a missing file included (what reads the model here reads weights)."""
        model, folder = load.stored(self._source)
        external.check(model.graph, folder)
        branches.retrace(model, self._followed)
        return model, folder

    @functools.cached_property
    def _initializers(self) -> dict[str, onnx.TensorProto]:
        return {t.name: t for t in self._model[0].graph.initializer}

    @functools.cached_property
    def _writers(self) -> dict[str, onnx.NodeProto]:
        return {out: n for n in self._model[0].graph.node for out in n.output}

    def _tensor(self, name: str) -> onnx.TensorProto | None:
        """Initializer ``name``, or the tensor of the ``Constant`` that writes it."""
        tensor = self._initializers.get(name)
        if tensor is None and name in self._writers:
            tensor = constant_tensor(self._writers[name])
        return tensor

    def weight(self, name: str, *, dequantized_by: str | None = None) -> np.ndarray | None:
        """The values of initializer or ``Constant`` ``name`` (``None`` for a constant
        not held as a tensor); with ``dequantized_by`` (the output of a
        DequantizeLinear that reads it), the values that op computes, or ``None`` when
        they are not plain per-tensor or per-axis ones."""
        folder = self._model[1]
        tensor = self._tensor(name)
        if tensor is None:
            return None
        values = _read(tensor, folder)
        if dequantized_by is None:
            return values
        return _dequantized(values, self._writers[dequantized_by], self._tensor, folder)

    def runner(self, names: Collection[str]) -> Runner:
        """A session that computes ``names`` (those onnxruntime can give).

        Raises:
            Exception: whatever onnxruntime raises for a model it cannot load.
        """
        model, folder = self._model
        return Runner(model, folder, names)


def _dequantized(
    quantized: np.ndarray,
    node: onnx.NodeProto,
    tensor_of: Callable[[str], onnx.TensorProto | None],
    folder: Path | None,
) -> np.ndarray | None:
    """``(q - zero_point) * scale`` as the DequantizeLinear computes it (per tensor or
    per axis); ``None`` for blocked quantization or a scale that is not a constant."""
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    scale_tensor = tensor_of(node.input[1])
    if attributes.get("block_size") or scale_tensor is None:
        return None
    scale = _read(scale_tensor, folder).astype(np.float32)
    zero_tensor = tensor_of(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    zero = (
        _read(zero_tensor, folder).astype(np.float32)
        if zero_tensor is not None
        else np.zeros((), np.float32)
    )
    values = quantized.astype(np.float32)
    if scale.ndim == 1 and values.ndim > 1:  # per axis: broadcast along that axis
        axis = int(attributes.get("axis", 1)) % values.ndim
        shape = [1] * values.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape) if zero.ndim else zero
    return (values - zero) * scale


def _read(tensor: onnx.TensorProto, folder: Path | None) -> np.ndarray:
    """One initializer's values. External data is mapped from its file (whose location
    :mod:`onnx_flow.frontend.external` checked), not copied: the pages read are all it
    costs."""
    entries = {e.key: e.value for e in tensor.external_data}
    dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    if (
        tensor.data_location == onnx.TensorProto.EXTERNAL
        and folder is not None
        and tensor.data_type not in _PACKED
    ):
        count = load.elements(tensor)
        offset = int(entries.get("offset", 0))
        mapped = np.memmap(folder / entries["location"], dtype="<" + dtype.str[1:], mode="r")
        start = offset // dtype.itemsize
        if offset % dtype.itemsize == 0 and start + count <= mapped.size:
            return mapped[start : start + count].reshape(tuple(tensor.dims))
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        external_data_helper.load_external_data_for_tensor(copy, str(folder or "."))
        return numpy_helper.to_array(copy)
    return numpy_helper.to_array(tensor)


#: Element types stored packed or specially (4-bit, bfloat16, float8): read by onnx.
_PACKED = frozenset(
    {
        onnx.TensorProto.INT4,
        onnx.TensorProto.UINT4,
        onnx.TensorProto.BFLOAT16,
        onnx.TensorProto.FLOAT8E4M3FN,
        onnx.TensorProto.FLOAT8E4M3FNUZ,
        onnx.TensorProto.FLOAT8E5M2,
        onnx.TensorProto.FLOAT8E5M2FNUZ,
        onnx.TensorProto.BOOL,
        onnx.TensorProto.STRING,
    }
)
