"""The flow network: operators joined by tensors whose capacity is their width.

Each tensor is one capacity, however many layers read it: in the split-vertex view a
tensor is an edge ``in -> out`` of capacity = width, joined by unbounded edges from its
producer and to each reader, so a tensor read by three layers is counted once. This
module keeps that network in its smallest exact form (who produces and who reads each
tensor), as plain Python lists: :mod:`onnx_flow.flow.reduce` derives the graph it
solves from it. Operators have unbounded capacity; a super-source feeds every data
input and every output feeds a super-sink. Only tensors that carry sample information
take part.

The wiring needs the nodes alone (:func:`connect`), the capacities the widths
(:meth:`FlowNetwork.weighed`): a large graph is wired while its shapes are inferred.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from onnx_flow.measure.widths import Widths
from onnx_flow.records import Wiring

__all__ = ["SINK", "SOURCE", "SPLIT_INPUT", "FlowNetwork", "connect"]

#: The name of the input a split adds in place of the split tensor.
SPLIT_INPUT = "{} (declared input)"

#: Vertex of the super-source (producer of every data input) and of the super-sink.
SOURCE = 0
SINK = 1


@dataclass(frozen=True, slots=True)
class FlowNetwork:
    """Tensors ``0 .. n-1`` in graph order; vertices: SOURCE, SINK, then one per operator."""

    tensors: tuple[str, ...]
    index: Mapping[str, int]
    """Tensor name -> its number."""
    producer: tuple[int, ...]
    """The vertex that writes each tensor (SOURCE for data inputs)."""
    readers: tuple[tuple[int, ...], ...]
    """The operator vertices that read each tensor, each once, in graph order."""
    reads: tuple[tuple[int, ...], ...]
    """Per vertex, the tensors it reads (empty for SOURCE and SINK)."""
    inputs: tuple[int, ...]
    """Data inputs, then the inputs that declared splits add."""
    outputs: Mapping[str, int]
    """Graph outputs that carry sample information, then the split tensors -> the number
    of the tensor joined to the sink for it: its own, or where a head is judged apart
    (:meth:`~onnx_flow.flow.reduce.Prepared.ending`), the head's input."""
    split_inputs: Mapping[str, str] = field(default_factory=dict)
    """Input that a split adds -> the split tensor it stands for."""
    capacity: tuple[int | None, ...] = ()
    """Width of each tensor; ``None`` is unbounded (a width that stayed unknown). Empty
    until the network is weighed."""

    def weighed(self, widths: Widths) -> FlowNetwork:
        """This network with each tensor's width as its capacity."""
        known = widths.known
        if self.split_inputs:  # a split's input has its tensor's width
            known = {**known, **{name: known[t] for name, t in self.split_inputs.items()}}
        return dataclasses.replace(self, capacity=tuple(map(known.get, self.tensors)))


def connect(wiring: Wiring, *, split: Sequence[str] = ()) -> FlowNetwork:
    """Return the flow network of the tensors that carry sample information, not yet
    weighed (:meth:`FlowNetwork.weighed` gives it the widths).

    Args:
        wiring: the graph's nodes.
        split: tensors at which the model is split (declared bottlenecks): each ends the
            part before it as an extra output, and the part after it reads, in its place,
            an extra input of the same width named ``SPLIT_INPUT.format(tensor)``.
    """
    index: dict[str, int] = {}
    producer: list[int] = []
    for name in wiring.inputs:
        index[name] = len(producer)
        producer.append(SOURCE)
    split_inputs = {SPLIT_INPUT.format(t): t for t in split}
    for name in split_inputs:
        index[name] = len(producer)
        producer.append(SOURCE)
    reading = {t: index[name] for name, t in split_inputs.items()}  # readers see the input
    reads: list[tuple[int, ...]] = [(), ()]
    readers: list[list[int]] = [[] for _ in producer]
    carrying = wiring.carrying
    for node in wiring.nodes:
        read = [
            reading[name] if name in reading else index[name]
            for name in node.inputs
            if name in index or name in reading
        ]
        if not read:
            continue
        written = [name for name in node.outputs if name in carrying]
        if not written:
            continue
        if len(read) > 1:
            read = list(dict.fromkeys(read))  # a tensor read twice is one capacity
        vertex = len(reads)
        reads.append(tuple(read))
        for tensor in read:
            readers[tensor].append(vertex)
        for name in written:
            if name not in index:
                index[name] = len(producer)
                producer.append(vertex)
                readers.append([])
    return FlowNetwork(
        tensors=tuple(index),
        index=index,
        producer=tuple(producer),
        readers=tuple(map(tuple, readers)),
        reads=tuple(reads),
        inputs=tuple(range(len(wiring.inputs) + len(split_inputs))),
        outputs={name: index[name] for name in (*wiring.outputs, *split) if name in index},
        split_inputs=split_inputs,
    )
