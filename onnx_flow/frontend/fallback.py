"""Shapes that ONNX inference leaves open, from onnxruntime.

Two fallbacks, in order, each only for the tensors still open:

1. onnxruntime's symbolic shape inference, which knows its own ``com.microsoft`` ops
   and follows symbolic arithmetic further. It reads no weights.
2. One run of the model in onnxruntime on synthetic inputs of the bound shapes (a fixed
   random seed), reading the shape of every open tensor. It needs the weights, and a
   shape that depends on values (``NonZero``, ``Unique``) holds for those inputs only:
   the report says when this was used.

Both are quiet: what they log goes nowhere, their failures leave the tensors open.
"""

from __future__ import annotations

import errno
import functools
import importlib
import importlib.util
from collections.abc import Collection, Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx

from onnx_flow.errors import AuditError
from onnx_flow.frontend.runtime import quiet
from onnx_flow.frontend.stored import Stored
from onnx_flow.processes import child

__all__ = ["RUN", "SYMBOLIC", "Shapes", "run", "symbolic"]

#: Names of the fallbacks in reports.
SYMBOLIC = "onnxruntime symbolic shape inference"
RUN = (
    "one onnxruntime run on synthetic inputs (a shape that depends on values holds for"
    " those inputs only)"
)

#: Shapes: tensor -> (elem_type, dims); dims are ints or symbol names.
Shapes = dict[str, tuple[int, tuple[int | str, ...]]]


@functools.cache
def symbolic_inference() -> ModuleType:
    """onnxruntime's symbolic shape inference module, loaded from its file.

    ``import onnxruntime.tools.symbolic_shape_infer`` first runs the ``__init__`` of
    ``onnxruntime.tools``, which imports torch whenever it is installed (2 s, for a
    helper unused here); the file itself needs numpy, onnx, sympy and packaging only
    (0.3 s). Where the file is not found, it is imported as usual.
    """
    name = "onnxruntime.tools.symbolic_shape_infer"  # its logger's name, as imported
    package = importlib.util.find_spec("onnxruntime")
    folders = (package and package.submodule_search_locations) or []
    path = Path(next(iter(folders), "."), "tools", "symbolic_shape_infer.py")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        return importlib.import_module(name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def symbolic(model: onnx.ModelProto, names: Collection[str]) -> Shapes:
    """Shapes of ``names`` that onnxruntime's symbolic inference finds (no weights read)."""
    inference_module = symbolic_inference()
    if (inference_module.get_opset(model) or 0) < 7:
        return {}  # it supports opset 7 and later
    # Its infer_shapes() keeps nothing when a single tensor stays open, and then saves
    # the model into the working directory: drive the same steps, keep what they find.
    inference = inference_module.SymbolicShapeInference(2**31 - 1, False, False, 0)
    try:
        with quiet("onnxruntime.tools.symbolic_shape_infer"):
            inference._preprocess(model)
            while inference.run_:
                inference._infer_impl()
            inference._update_output_from_vi()
    except Exception:  # ops and conflicts it cannot handle end it: keep what it found
        pass
    inferred = getattr(inference, "out_mp_", None)
    if inferred is None:
        return {}
    found: Shapes = {}
    wanted = set(names)
    graph = inferred.graph
    for value in (*graph.value_info, *graph.output):
        if value.name in wanted and value.type.HasField("tensor_type"):
            tensor = value.type.tensor_type
            if tensor.HasField("shape"):
                dims = tuple(
                    d.dim_value if d.HasField("dim_value") else d.dim_param
                    for d in tensor.shape.dim
                )
                found[value.name] = (tensor.elem_type, dims)
    return found


def run(
    stored: Stored,
    inputs: Mapping[str, tuple[int, tuple[int, ...]]],
    names: Collection[str],
    *,
    values: Mapping[str, np.ndarray],
    seconds: float,
    memory: int,
) -> Shapes:
    """Shapes of ``names`` from one onnxruntime run on synthetic inputs, in a child
    process of ``memory`` bytes of address space that may take ``seconds``: a model
    whose run never ends (a ``Loop`` of 2**62 iterations) or exhausts memory costs its
    own audit, not the run over a folder.

    Args:
        stored: the model as stored (weights kept), its ``If`` branches taken as audited.
        inputs: each data input's (elem_type, static shape).
        names: the tensors to measure.
        values: inputs fed these values rather than synthetic ones.
        seconds: the longest the run may take.
        memory: the address space the run may use, in bytes.

    Raises:
        AuditError: the run took longer or died (naming the limit), or the weights it
            needs cannot be read.
    """
    work = functools.partial(_run, stored, inputs, names, values)
    try:
        return child.bounded(work, seconds=seconds, memory=memory, what="the onnxruntime run")
    except (child.Overrun, MemoryError, OSError) as error:
        if isinstance(error, OSError) and error.errno != errno.ENOMEM:
            raise
        reason = (
            str(error)
            if isinstance(error, child.Overrun)
            else "the onnxruntime run ran out of memory"
        )
        raise AuditError(
            f"{reason}, to find the shapes inference left open"
            " (--limit run-seconds=N, run-memory=BYTES)"
        ) from None


def _run(
    stored: Stored,
    inputs: Mapping[str, tuple[int, tuple[int, ...]]],
    names: Collection[str],
    values: Mapping[str, np.ndarray],
) -> Shapes:
    """:func:`run`'s work, in the child."""
    rng = np.random.default_rng(0)
    feeds = {
        name: values[name] if name in values else _synthetic(elem, shape, rng)
        for name, (elem, shape) in inputs.items()
    }
    try:
        computed = stored.runner(names).run(feeds)
    except AuditError:  # the weights the run needs cannot be read (a missing file)
        raise
    except Exception as error:  # onnxruntime cannot load or run it: the tensors stay open
        if any(sign in str(error) for sign in _OUT_OF_MEMORY):
            raise MemoryError from None
        return {}
    return {
        name: (onnx.helper.np_dtype_to_tensor_dtype(value.dtype), tuple(value.shape))
        for name, value in computed.items()
        if isinstance(value, np.ndarray)
    }


#: What onnxruntime's errors say when an allocation failed (its arena, or C++'s own).
_OUT_OF_MEMORY = ("Failed to allocate memory", "bad_alloc", "bad allocation")


def _synthetic(elem_type: int, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Values for one input: normal floats, zero indices, false booleans."""
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    return np.zeros(shape, dtype)
