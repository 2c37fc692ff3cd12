"""Hypothesis strategies: random graphs the flow is checked on."""

from __future__ import annotations

from hypothesis import strategies as st

from onnx_flow.frontend.nodes import carrying_tensors
from onnx_flow.records import Node, ShapedGraph, TensorType, Wiring


@st.composite
def random_dags(draw: st.DrawFn, max_nodes: int = 8, min_width: int = 0) -> ShapedGraph:
    """Operators with 1-3 inputs among earlier tensors, each writing one tensor."""
    tensors = [f"in{i}" for i in range(draw(st.integers(1, 2)))]
    inputs = tuple(tensors)
    sizes = {name: draw(st.integers(1, 9)) for name in tensors}
    nodes = []
    for k in range(draw(st.integers(1, max_nodes))):
        reads = draw(st.lists(st.sampled_from(tensors), min_size=1, max_size=3, unique=True))
        out = f"t{k}"
        nodes.append(Node(f"n{k}", "Op", "", tuple(reads), (out,), f"/layer{k}/Op"))
        tensors.append(out)
        sizes[out] = draw(st.integers(min_width, 9))
    outputs = draw(
        st.lists(st.sampled_from(tensors[len(inputs) :]), min_size=1, max_size=2, unique=True)
    )
    return shaped_graph(inputs, nodes, tuple(outputs), sizes)


def shaped_graph(inputs, nodes, outputs, sizes) -> ShapedGraph:
    wiring = Wiring(
        nodes=tuple(nodes),
        inputs=inputs,
        outputs=outputs,
        constants=frozenset(),
        producers={out: node for node in nodes for out in node.outputs},
        carrying=carrying_tensors(nodes, inputs),
    )
    return ShapedGraph(
        wiring=wiring,
        types={name: TensorType((size,), "FLOAT", 32, False) for name, size in sizes.items()},
        dims={},
        declared_dims=frozenset(),
    )
