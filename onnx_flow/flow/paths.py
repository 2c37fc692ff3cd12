"""Which tensors every path from a tensor to the outputs passes through.

The question findings ask of an attention: does a residual (or any other path) go
around it? networkx's dominators answer it for every tensor at once.
"""

from __future__ import annotations

from onnx_flow.records import ShapedGraph

__all__ = ["PathsToOutputs"]


class PathsToOutputs:
    """Which tensors every path from a tensor to the outputs passes through.

    Those are its dominators in the carrying tensors' graph reversed and rooted at the
    outputs; one pass finds them all (networkx's ``immediate_dominators``), and a walk of
    the dominator tree numbers it so that each question takes constant time. Asking
    with a search from the outputs per attention took time quadratic in the depth.
    """

    def __init__(self, graph: ShapedGraph) -> None:
        import networkx as nx  # only models with attention get here

        reverse = nx.DiGraph()
        reverse.add_node(_OUTPUTS)
        reverse.add_edges_from((_OUTPUTS, o) for o in graph.outputs if o in graph.carrying)
        for name in graph.carrying:
            producer = graph.producers.get(name)
            if producer is not None:
                reverse.add_edges_from((name, i) for i in producer.inputs if i in graph.carrying)
        children: dict[object, list[object]] = {}
        for tensor, dominator in nx.immediate_dominators(reverse, _OUTPUTS).items():
            if tensor is not _OUTPUTS:
                children.setdefault(dominator, []).append(tensor)
        self._enter: dict[object, int] = {}
        self._leave: dict[object, int] = {}
        stack: list[tuple[object, bool]] = [(_OUTPUTS, False)]
        while stack:
            node, left = stack.pop()
            if left:
                self._leave[node] = len(self._enter) + len(self._leave)
                continue
            self._enter[node] = len(self._enter) + len(self._leave)
            stack.append((node, True))
            stack += [(child, False) for child in children.get(node, ())]

    def around(self, tensor: str, blocked: str) -> bool:
        """Whether some path from ``tensor`` to the outputs does not pass ``blocked``."""
        if tensor == blocked or tensor not in self._enter:
            return False  # it is the blocked tensor, or it reaches no output
        if blocked not in self._enter:
            return True
        dominated = self._enter[blocked] < self._enter[tensor] < self._leave[blocked]
        return not dominated


#: The root of the reversed graph: every output's reader.
_OUTPUTS = object()
