"""Follow the branch an ``If`` takes when constants and given input values decide it.

To shape inference and to the flow an ``If`` is one operator: both branches are
inferred, and each output depends on everything either branch reads. Some models hold
their whole network in one: a merged KV-cache decoder (optimum's ``use_cache_branch``)
or a model that switches on its sample rate (``sr == 16000``). When the condition is
computed from constants, bound input shapes and values the user gives for inputs
(``--input-value``), the taken branch's nodes replace the ``If`` in the graph, so every
later stage sees its layers; an ``If`` left undecided is named with the inputs its
condition reads.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import onnx

from onnx_flow.errors import AuditError
from onnx_flow.frontend import fold, symbols
from onnx_flow.frontend.nodes import subgraphs
from onnx_flow.frontend.symbols import value_text
from onnx_flow.records import STANDARD_DOMAINS, TensorType, format_shape
from onnx_flow.report import Branch

__all__ = ["follow", "input_values", "retrace"]

#: The most nodes evaluated to decide one condition: a condition compares an input or a
#: shape with a constant in a few ops; a longer computation is left to run time.
_CONDITION_NODES = 64


def input_values(
    graph: onnx.GraphProto, inputs: tuple[str, ...], given: Mapping[str, tuple[float, ...]]
) -> dict[str, np.ndarray]:
    """The values given for data inputs (``--input-value``), as arrays of each input's
    element type and (bound) shape.

    Raises:
        AuditError: a name is no data input, the input's shape is not static, or the
            number of values is not its element count.
    """
    data = {value.name: value for value in graph.input if value.name in inputs}
    arrays: dict[str, np.ndarray] = {}
    for name, values in given.items():
        flag = f"--input-value {name}={','.join(map(value_text, values))}"
        value = symbols.data_input(data, name, flag)
        shape = symbols.declared_shape(value)
        static = TensorType(shape, "", None, False).static
        if static is None:
            written = "unknown" if shape is None else format_shape(shape)
            raise AuditError(
                f"{flag}: {name!r} has shape {written}; give its shape with --input-shape"
            )
        if math.prod(static) != len(values):
            raise AuditError(
                f"{flag}: {name!r} has shape {format_shape(static)}:"
                f" {math.prod(static)} values, not {len(values)}"
            )
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        arrays[name] = np.asarray(values).astype(dtype).reshape(static)
    return arrays


def follow(model: onnx.ModelProto, values: Mapping[str, np.ndarray]) -> tuple[Branch, ...]:
    """Replace each ``If`` whose condition is known before a run by the nodes of the
    branch it takes, in place; again for the ``If`` nodes a taken branch holds.

    Args:
        model: a model whose dims are bound (:func:`onnx_flow.frontend.shapes.bind`).
        values: the data inputs' given values (:func:`input_values`).

    Returns:
        Every ``If`` met, in order, with the branch taken or ``None``.

    Raises:
        AuditError: a taken branch defines a name the graph defines too.
    """
    graph = model.graph
    if not any(_is_if(node) for node in graph.node):
        return ()
    known = fold.known_values(graph)
    known.update(values)
    shapes = {
        value.name: TensorType(symbols.declared_shape(value), "", None, False)
        for value in graph.input
    }
    data = shapes.keys() - {t.name for t in graph.initializer}
    followed: list[Branch] = []

    def decide(node: onnx.NodeProto, producers: Mapping[str, onnx.NodeProto]) -> str | None:
        condition = node.input[0]
        cone = _cone(condition, producers)
        value = _evaluate(cone, condition, known, shapes)
        taken = None
        if value is not None and value.size == 1:
            taken = "then_branch" if bool(value.reshape(())) else "else_branch"
        read = tuple(name for name in _leaves(condition, cone, producers) if name in data)
        followed.append(Branch(node.name, condition, taken, read))
        return taken

    _take(graph, decide)
    return tuple(followed)


def retrace(model: onnx.ModelProto, followed: Iterable[Branch]) -> None:
    """Take the branches :func:`follow` took, in place, in another copy of the model
    (the one with its weights, to be run). Both meet the ``If`` nodes in the same order
    (their names may be empty or repeated)."""
    decisions = [branch.taken for branch in followed]
    if any(decisions):
        taken = iter(decisions)
        _take(model.graph, lambda node, _: next(taken, None))


def _take(
    graph: onnx.GraphProto,
    decide: Callable[[onnx.NodeProto, Mapping[str, onnx.NodeProto]], str | None],
) -> None:
    """Replace each ``If`` by the branch ``decide`` names for it (given the writer of
    each tensor), if any, in place."""
    pending = deque(graph.node)
    producers = {out: node for node in pending for out in node.output if out}
    defined = {*producers, *(i.name for i in graph.input), *(t.name for t in graph.initializer)}
    kept: list[onnx.NodeProto] = []
    while pending:
        node = pending.popleft()
        taken = decide(node, producers) if _is_if(node) else None
        if taken is None:
            kept.append(node)
            continue
        defined.difference_update(node.output)  # the branch writes them now
        _forget_shapes(graph, node.output)
        inlined = _inlined(node, taken, graph, defined)
        producers.update((out, inner) for inner in inlined for out in inner.output if out)
        pending.extendleft(reversed(inlined))
    del graph.node[:]
    graph.node.extend(kept)


def _forget_shapes(graph: onnx.GraphProto, names: Iterable[str]) -> None:
    """Clear the shapes declared for ``names``, in place: written for the ``If``, they
    cover both branches (a merged decoder declares its cache branch's shapes), and
    inference gives those of the branch taken."""
    forgotten = set(names)
    for value in (*graph.output, *graph.value_info):
        if value.name in forgotten and value.type.HasField("tensor_type"):
            value.type.tensor_type.ClearField("shape")


def _is_if(node: onnx.NodeProto) -> bool:
    return node.op_type == "If" and node.domain in STANDARD_DOMAINS


def _cone(name: str, producers: Mapping[str, onnx.NodeProto]) -> list[onnx.NodeProto] | None:
    """The nodes ``name`` is computed from, producers first; ``None`` past the limit."""
    order: list[onnx.NodeProto] = []
    seen: set[int] = set()
    stack = [(producers[name], False)] if name in producers else []
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(seen) > _CONDITION_NODES:
            return None
        stack.append((node, True))
        stack.extend((producers[i], False) for i in node.input if i in producers)
    return order


def _leaves(
    name: str, cone: list[onnx.NodeProto] | None, producers: Mapping[str, onnx.NodeProto]
) -> list[str]:
    """The names ``name`` is computed from that no node writes, in order."""
    if name not in producers:
        return [name]
    names = [i for node in cone or () for i in node.input if i and i not in producers]
    return list(dict.fromkeys(names))


def _evaluate(
    cone: list[onnx.NodeProto] | None,
    name: str,
    known: fold.KnownValues,
    shapes: Mapping[str, TensorType],
) -> np.ndarray | None:
    """The value of ``name``, or ``None`` when its cone needs what is not known; the
    values found join ``known``."""
    if name in known or cone is None:
        return known.get(name)
    for node in cone:
        if all(out in known for out in node.output if out):
            continue
        result = fold.evaluate(node, known, shapes)
        if result is None:
            return None
        known.update(result)
    return known.get(name)


def _inlined(
    node: onnx.NodeProto, taken: str, graph: onnx.GraphProto, defined: set[str]
) -> list[onnx.NodeProto]:
    """The nodes of the ``If``'s ``taken`` branch, writing the ``If``'s outputs; the
    branch's initializers move to ``graph`` and its names join ``defined``."""
    branch = next(a.g for a in node.attribute if a.name == taken)
    written = [out for inner in branch.node for out in inner.output if out]
    for name in (*(t.name for t in branch.initializer), *written):
        if name in defined:
            raise AuditError(
                f"If {node.name!r}: its {taken} defines {name!r}, which the graph defines too"
            )
    renamed: dict[str, str] = {}
    passed: list[onnx.NodeProto] = []
    for inner, outer in zip((o.name for o in branch.output), node.output, strict=False):
        if not outer:
            continue
        if inner in written and inner not in renamed:
            renamed[inner] = outer
        else:  # an input passed through, a branch initializer, or an output given twice
            source = renamed.get(inner, inner)
            passed.append(
                onnx.helper.make_node("Identity", [source], [outer], name=f"{node.name}/{outer}")
            )
    graph.initializer.extend(branch.initializer)
    defined.update(t.name for t in branch.initializer)
    defined.update(written)
    inlined = []
    for inner in branch.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(inner)
        inlined.append(copy)
    _rename(inlined, renamed)
    return inlined + passed


def _rename(nodes: Iterable[onnx.NodeProto], names: Mapping[str, str]) -> None:
    """Rename the tensors ``nodes`` read and write, in their subgraphs too, in place."""
    if not names:
        return
    for node in nodes:
        node.input[:] = [names.get(i, i) for i in node.input]
        node.output[:] = [names.get(o, o) for o in node.output]
        _rename((inner for graph in subgraphs(node) for inner in graph.node), names)
