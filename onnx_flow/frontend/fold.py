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
from collections.abc import Iterable, Iterator, KeysView, Mapping, MutableMapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from onnx_flow.frontend import arithmetic
from onnx_flow.frontend.load import DATA_FIELDS, elements
from onnx_flow.frontend.nodes import Links, constant_tensor
from onnx_flow.records import SHAPE_OPS, STANDARD_DOMAINS, SUBGRAPH_OPS, TensorType

__all__ = ["KnownValues", "evaluate", "fold_values", "known_values"]

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


class KnownValues(MutableMapping[str, np.ndarray]):
    """Values known without a run, by name: arrays, and tensors read into arrays only
    when a node to fold needs them (most constants feed nodes that cannot be folded)."""

    def __init__(self, tensors: Iterable[onnx.TensorProto] = ()) -> None:
        self._values: dict[str, np.ndarray | onnx.TensorProto] = {
            t.name: t for t in tensors if _has_data(t)
        }

    @property
    def names(self) -> KeysView[str]:
        """The names known (a live view: testing it costs no method call)."""
        return self._values.keys()

    def add_tensor(self, name: str, tensor: onnx.TensorProto) -> None:
        """Know ``name`` as ``tensor``'s value, read when first needed."""
        self._values[name] = tensor

    def tensor(self, name: str) -> onnx.TensorProto:
        """The value of ``name`` as an initializer of that name."""
        stored = self._values[name]
        if not isinstance(stored, onnx.TensorProto):  # an array, or a numpy scalar
            return numpy_helper.from_array(np.asarray(stored), name)
        tensor = onnx.TensorProto()
        tensor.CopyFrom(stored)
        tensor.name = name
        return tensor

    def __getitem__(self, name: str) -> np.ndarray:
        value = self._values[name]
        if isinstance(value, onnx.TensorProto):
            value = self._values[name] = numpy_helper.to_array(value)
        return value

    def __setitem__(self, name: str, array: np.ndarray) -> None:
        self._values[name] = array

    def __delitem__(self, name: str) -> None:
        del self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def fold_values(
    nodes: Sequence[onnx.NodeProto],
    links: Links,
    indices: Iterable[int],
    types: Mapping[str, TensorType],
    values: KnownValues,
) -> list[str]:
    """Compute the outputs of the nodes whose inputs are all known values.

    The nodes stay as they are: the next round of inference reads the values found from
    :func:`onnx_flow.frontend.inference.open_part`. A ``Constant`` node's value joins
    ``values`` unread until a node to fold needs it.

    Args:
        nodes: the graph's nodes.
        links: what they read and write (most are passed over on these alone).
        indices: the nodes to evaluate, in file order.
        types: the tensors' types after shape inference, for the shapes ``Shape`` reads.
        values: the values known so far (:func:`known_values` for the first round); the
            values found join it.

    Returns:
        The tensors whose values were found (not counting constants); none when nothing
        more can be.
    """
    known = values.names
    found: list[str] = []
    for index in indices:
        outputs = links.writes[index]
        if not outputs or outputs[0] in known:
            continue  # folded, or a constant read, in an earlier round
        op = links.ops[index]
        if op == "Constant":
            tensor = constant_tensor(nodes[index])
            if tensor is not None:
                if elements(tensor) <= _MAX_ELEMENTS and _has_data(tensor):  # not dropped
                    values.add_tensor(outputs[0], tensor)
                continue
        elif op not in SHAPE_OPS and not all(map(known.__contains__, links.reads[index])):
            continue  # most nodes: an input is not known
        result = evaluate(nodes[index], values, types)
        if result is not None:
            values.update(result)
            found.extend(result)
    if found:
        _log.debug("folded %d shape computations", len(found))
    return found


def known_values(graph: onnx.GraphProto) -> KnownValues:
    """The values of the initializers whose data the loader kept."""
    return KnownValues(graph.initializer)


def _has_data(tensor: onnx.TensorProto) -> bool:
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return False
    return elements(tensor) == 0 or any(len(getattr(tensor, field)) > 0 for field in DATA_FIELDS)


def evaluate(
    node: onnx.NodeProto, values: Mapping[str, np.ndarray], types: Mapping[str, TensorType]
) -> dict[str, np.ndarray] | None:
    """The node's outputs if it can be computed from known values and static shapes."""
    op = node.op_type
    if node.domain not in STANDARD_DOMAINS or op in _NONDETERMINISTIC or op in SUBGRAPH_OPS:
        return None
    shape = None
    if op in SHAPE_OPS:
        read = types.get(node.input[0])
        shape = read.static if read is not None else None
        if shape is None:
            return None
        inputs: list[np.ndarray | None] = [None]
    else:
        names = node.input[:]
        if not all(map(values.__contains__, filter(None, names))):
            return None  # most nodes: checked first
        if op == "Constant":
            constant = constant_tensor(node)
            if constant is not None:  # no evaluator needed; none for a dropped weight
                if elements(constant) > _MAX_ELEMENTS or not _has_data(constant):
                    return None
                return {node.output[0]: numpy_helper.to_array(constant)}
        elif not names:
            return None
        inputs = [values[name] if name else None for name in names]
    computed = arithmetic.compute(node, inputs, shape, _MAX_ELEMENTS)
    if computed is not None:
        return {name: a for name, a in zip(node.output, computed, strict=False) if name}
    if shape is not None:
        return None  # Shape and Size are computed from the shape alone, or not at all
    feeds = {name: value for name, value in zip(node.input, inputs, strict=True) if name}
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
