"""Evaluate shape computations to constants where ONNX data propagation stops.

Once symbolic dims are bound, every ``Shape`` of a tensor with a static shape is a
constant, and so is what is computed from it alone (``Range``, ``Cast``, ``Where`` on
shapes ...). ONNX shape inference propagates values through only a few of those ops;
evaluating the rest with the ONNX reference implementation lets the next round of
inference resolve the ``Reshape``/``Expand`` targets they feed.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from onnx_flow.frontend import arithmetic
from onnx_flow.frontend.load import DATA_FIELDS, elements
from onnx_flow.records import SHAPE_OPS, STANDARD_DOMAINS, SUBGRAPH_OPS, TensorType

__all__ = ["evaluate", "fold_constants", "known_values"]

_log = logging.getLogger(__name__)

#: Larger results stay computed at run time: shapes need values only of small tensors.
_MAX_ELEMENTS = 65536

_NONDETERMINISTIC = frozenset(
    {
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Bernoulli",
        "Multinomial",
    }
)


def fold_constants(model: onnx.ModelProto, types: Mapping[str, TensorType]) -> int:
    """Replace nodes whose inputs are all known values by initializers, in place.

    Args:
        model: the model to change (owned by the pipeline).
        types: its tensors' types after shape inference, for the shapes ``Shape`` reads.

    Returns:
        How many nodes were folded; 0 when nothing more can be.
    """
    graph = model.graph
    values = known_values(graph)
    folded: list[int] = []
    for index, node in enumerate(graph.node):
        result = evaluate(node, values, types)
        if result is None:
            continue
        values.update(result)
        folded.append(index)
    if not folded:
        return 0
    dropped = set(folded)
    kept = [node for i, node in enumerate(graph.node) if i not in dropped]
    produced = {out for i in folded for out in graph.node[i].output if out}
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(
        numpy_helper.from_array(values[name], name) for name in sorted(produced)
    )
    _log.debug("folded %d shape computations", len(folded))
    return len(folded)


def known_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """The values of the initializers whose data the loader kept."""
    return {t.name: numpy_helper.to_array(t) for t in graph.initializer if _has_data(t)}


def _has_data(tensor: onnx.TensorProto) -> bool:
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return False
    return elements(tensor) == 0 or any(len(getattr(tensor, field)) > 0 for field in DATA_FIELDS)


def evaluate(
    node: onnx.NodeProto, values: dict[str, np.ndarray], types: Mapping[str, TensorType]
) -> dict[str, np.ndarray] | None:
    """The node's outputs if it can be computed from known values and static shapes."""
    op = node.op_type
    if node.domain not in STANDARD_DOMAINS or op in _NONDETERMINISTIC or op in SUBGRAPH_OPS:
        return None
    if op not in SHAPE_OPS and not all(name in values for name in node.input if name):
        return None  # most nodes: checked first
    if op == "Constant" and [a.name for a in node.attribute] == ["value"]:
        # Exporters write thousands of these: read the tensor, no evaluator needed.
        value = numpy_helper.to_array(node.attribute[0].t)
        return {node.output[0]: value} if value.size <= _MAX_ELEMENTS else None
    shape = None
    if op in SHAPE_OPS:
        tensor = types.get(node.input[0])
        shape = tensor.static if tensor is not None else None
        if shape is None:
            return None
    elif not node.input and op != "Constant":
        return None
    inputs = [values.get(name) if name else None for name in node.input]
    computed = arithmetic.compute(node, inputs, shape, _MAX_ELEMENTS)
    if computed is not None:
        return {name: a for name, a in zip(node.output, computed, strict=False) if name}
    if shape is not None:
        return None  # Shape and Size are computed from the shape alone, or not at all
    feeds = {name: values[name] for name in node.input if name}
    # Imported here: most models need no folding, and the reference runtime is slow to load.
    from onnx.reference import ReferenceEvaluator

    try:
        # Constants may hold log(0) and the like: numpy's warnings are not the user's.
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            outputs = ReferenceEvaluator(node).run(None, feeds)
    except Exception as error:  # an op the reference cannot run stays for shape inference
        _log.debug("cannot fold %s (%s): %s", node.name, node.op_type, error)
        return None
    arrays = [np.asarray(o) for o in outputs]
    if any(a.size > _MAX_ELEMENTS for a in arrays):
        return None
    # Optional outputs the node does not write have empty names: skip them.
    return {name: a for name, a in zip(node.output, arrays, strict=False) if name}
