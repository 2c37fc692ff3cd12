"""Which tensors every path from a tensor to the outputs passes through.

The question findings ask of an attention: does a residual (or any other path) go
around it? Dominators answer it for every tensor at once.
"""

from __future__ import annotations

from onnx_flow.records import ShapedGraph

__all__ = ["PathsToOutputs"]


class PathsToOutputs:
    """Which tensors every path from a tensor to the outputs passes through.

    Those are its dominators in the carrying tensors' graph reversed and rooted at the
    outputs. The graph is acyclic and its tensors come in topological order, so one pass
    over them backwards finds each immediate dominator as the nearest common dominator
    of the tensors it feeds (Cooper, Harvey and Kennedy's intersection, done once per
    edge); a walk of the dominator tree then numbers it so that each question takes
    constant time. Asking with a search from the outputs per attention took time
    quadratic in the depth.
    """

    def __init__(self, graph: ShapedGraph) -> None:
        fed: dict[str, list[str]] = {}  # tensor -> the carrying tensors its readers write
        for node in graph.nodes:
            written = [o for o in node.outputs if o in graph.carrying]
            for name in dict.fromkeys(node.inputs):
                if name in graph.carrying and written:
                    fed.setdefault(name, []).extend(written)
        dominator: dict[object, object] = {_OUTPUTS: _OUTPUTS}
        depth: dict[object, int] = {_OUTPUTS: 0}
        outputs = set(graph.outputs)
        for tensor in reversed(list(graph.carrying)):
            ahead: list[object] = [_OUTPUTS] if tensor in outputs else []
            ahead += [t for t in fed.get(tensor, ()) if t in dominator]
            if not ahead:
                continue  # it reaches no output
            common = ahead[0]
            for other in ahead[1:]:
                common = _intersect(common, other, dominator, depth)
            dominator[tensor] = common
            depth[tensor] = depth[common] + 1
        children: dict[object, list[object]] = {}
        for vertex, parent in dominator.items():
            if vertex is not _OUTPUTS:
                children.setdefault(parent, []).append(vertex)
        self._enter: dict[object, int] = {}
        self._leave: dict[object, int] = {}
        stack: list[tuple[object, bool]] = [(_OUTPUTS, False)]
        while stack:
            vertex, left = stack.pop()
            if left:
                self._leave[vertex] = len(self._enter) + len(self._leave)
                continue
            self._enter[vertex] = len(self._enter) + len(self._leave)
            stack.append((vertex, True))
            stack += [(child, False) for child in children.get(vertex, ())]

    def around(self, tensor: str, blocked: str) -> bool:
        """Whether some path from ``tensor`` to the outputs does not pass ``blocked``."""
        if tensor == blocked or tensor not in self._enter:
            return False  # it is the blocked tensor, or it reaches no output
        if blocked not in self._enter:
            return True
        dominated = self._enter[blocked] < self._enter[tensor] < self._leave[blocked]
        return not dominated


def _intersect(
    a: object, b: object, dominator: dict[object, object], depth: dict[object, int]
) -> object:
    """The nearest common ancestor of ``a`` and ``b`` in the dominator tree so far."""
    while a is not b:
        if depth[a] >= depth[b]:
            a = dominator[a]
        else:
            b = dominator[b]
    return a


#: The root of the reversed graph: every output's reader.
_OUTPUTS = object()
