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
from typing import BinaryIO

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnx_flow.frontend import branches, external, load
from onnx_flow.frontend.dtypes import PACKED
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
        self._files: dict[str, BinaryIO] = {}
        """External-data files by location, each opened and checked once."""

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

    def _values(self, tensor: onnx.TensorProto) -> np.ndarray:
        """A tensor's values, external data read from its checked file."""
        folder = self._model[1]
        if tensor.data_location != onnx.TensorProto.EXTERNAL or folder is None:
            return numpy_helper.to_array(tensor)
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries["location"]
        if location not in self._files:
            self._files[location] = external.opened(folder, location)
        file = self._files[location]
        offset = int(entries.get("offset", 0))
        if "length" in entries:
            length = int(entries["length"])
        else:  # the rest of the file
            length = os.fstat(file.fileno()).st_size - offset
        # Each tensor maps its own bytes: they leave memory when its array does.
        raw = (
            np.memmap(file, dtype=np.uint8, mode="r", offset=offset, shape=(length,))
            if length
            else np.empty(0, np.uint8)
        )
        if tensor.data_type in PACKED:  # onnx decodes these from raw bytes
            copy = onnx.TensorProto()
            copy.CopyFrom(tensor)
            del copy.external_data[:]
            copy.data_location = onnx.TensorProto.DEFAULT
            copy.raw_data = raw.tobytes()
            return numpy_helper.to_array(copy)
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type).newbyteorder("<")
        return raw[: load.elements(tensor) * dtype.itemsize].view(dtype).reshape(tuple(tensor.dims))

    def weight(self, name: str, *, dequantized_by: str | None = None) -> np.ndarray | None:
        """The values of initializer or ``Constant`` ``name`` (``None`` for a constant
        not held as a tensor); with ``dequantized_by`` (the output of a
        DequantizeLinear that reads it), the values that op computes, or ``None`` when
        they are not plain per-tensor or per-axis ones."""
        tensor = self._tensor(name)
        if tensor is None:
            return None
        values = self._values(tensor)
        if dequantized_by is None:
            return values
        return _dequantized(values, self._writers[dequantized_by], self._tensor, self._values)

    def runner(self, names: Collection[str]) -> Runner:
        """A session that computes ``names`` (those onnxruntime can give).

        Raises:
            Exception: whatever onnxruntime raises for a model it cannot load.
        """
        model, folder = self._model
        return Runner(model, folder, names, self._external_weights)

    @functools.cached_property
    def _external_weights(self) -> dict[str, np.ndarray]:
        """The external initializers' values, mapped once for every runner (the data
        measure loads one session per group of tensors)."""
        return {
            t.name: self._values(t)
            for t in self._model[0].graph.initializer
            if t.data_location == onnx.TensorProto.EXTERNAL
        }


def _dequantized(
    quantized: np.ndarray,
    node: onnx.NodeProto,
    tensor_of: Callable[[str], onnx.TensorProto | None],
    values_of: Callable[[onnx.TensorProto], np.ndarray],
) -> np.ndarray | None:
    """``(q - zero_point) * scale`` as the DequantizeLinear computes it (per tensor or
    per axis); ``None`` for blocked quantization or a scale that is not a constant."""
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    scale_tensor = tensor_of(node.input[1])
    if attributes.get("block_size") or scale_tensor is None:
        return None
    scale = values_of(scale_tensor).astype(np.float32)
    zero_tensor = tensor_of(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    zero = (
        values_of(zero_tensor).astype(np.float32)
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
