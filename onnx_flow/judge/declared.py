"""Declared bottlenecks: the layers a user says are narrow on purpose (``--allow``).

An autoencoder is two models, an encoder and a decoder, and its latent is narrow by
design. Declaring a layer splits the model at the tensors it hands on: each becomes an
extra output of the part before it and an extra input of the part after it (see
:func:`onnx_flow.flow.network.connect`). The declared squeeze then passes; a second squeeze,
or a path that goes around the declared layer, is still reported.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from onnx_flow.errors import AuditError
from onnx_flow.measure.widths import Widths
from onnx_flow.records import Node, ShapedGraph
from onnx_flow.report import Unused

__all__ = ["split_tensors"]


def split_tensors(
    graph: ShapedGraph, widths: Widths, allow: Sequence[str], *, lenient: bool = False
) -> tuple[tuple[str, ...], tuple[Unused, ...]]:
    """The tensors at which the declared layers split the model, in graph order, and the
    entries of ``allow`` that match nothing (left out when ``lenient``).

    Each entry of ``allow`` names a tensor, a node, or a module path (``enc.2``: every
    node in that module or below it). A node or a module hands on the sample-carrying
    tensors it writes that something outside it reads, or that the graph outputs.

    Raises:
        AuditError: an entry matches nothing (unless ``lenient``), or a tensor it names
            has no known width.
    """
    chosen: set[str] = set()
    unused = []
    for spec in allow:
        found = _match(graph, widths, spec)
        if not found:
            reason = (
                "no tensor, node or module of the model that carries sample information"
                f" has that name{_suggestion(graph, spec)}"
            )
            if not lenient:
                raise AuditError(f"--allow {spec}: {reason}")
            unused.append(Unused("allow", spec, f"--allow {spec}", reason))
        for tensor in sorted(found):
            if tensor not in widths.known:
                raise AuditError(f"--allow {spec}: the width of {tensor!r} is unknown")
        chosen |= found
    return tuple(name for name in graph.carrying if name in chosen), tuple(unused)


def _match(graph: ShapedGraph, widths: Widths, spec: str) -> set[str]:
    if widths.carries(spec) and spec not in graph.inputs:
        return {spec}
    members = [node for node in graph.nodes if node.name == spec]
    if not members:
        members = _in_module(graph, spec)
    inside = {id(node) for node in members}
    written = {out for node in members for out in node.outputs if widths.carries(out)}
    read_outside = {name for node in graph.nodes if id(node) not in inside for name in node.inputs}
    return {t for t in written if t in read_outside or t in graph.outputs}


def _in_module(graph: ShapedGraph, spec: str) -> list[Node]:
    """The nodes of module ``spec`` and of the modules below it (``enc.2.0``,
    ``mlp_1/squeeze_1/dense``); else of the one layer whose own name, less the ``_N``
    suffix Keras adds when it traces a layer again, is ``spec`` (``squeeze`` for
    ``mlp_1/squeeze_1``)."""
    modules = {module for node in graph.nodes if (module := node.module) is not None}
    below = (spec + ".", spec + "/")
    chosen = {m for m in modules if m == spec or m.startswith(below)}
    if not chosen:
        named = {m for m in modules if _own_name(m) == spec}
        if len(named) == 1:
            (layer,) = named
            chosen = {m for m in modules if m == layer or m.startswith(layer + "/")}
    return [node for node in graph.nodes if node.module in chosen]


def _own_name(module: str) -> str:
    """A layer's last scope, less a ``_N`` tracing suffix: ``mlp_1/squeeze_1`` ->
    ``squeeze``."""
    own = module.rpartition("/")[2]
    stem, _, number = own.rpartition("_")
    return stem if stem and number.isdigit() else own


def _suggestion(graph: ShapedGraph, spec: str) -> str:
    """``; did you mean 'enc.2'?``: what ``--allow`` takes (node names, module paths, a
    layer's own name where one layer has it) closest to ``spec``, also by the last part
    of a path (``Dense1`` finds ``.../MagikaV2/Dense_1``)."""
    modules = {module for node in graph.nodes if (module := node.module) is not None}
    owners: dict[str, set[str]] = {}
    for module in modules:
        owners.setdefault(_own_name(module), set()).add(module)
    takes = {name: name for node in graph.nodes if (name := node.name)}
    takes |= {module.rpartition("/")[2]: module for module in modules}
    takes |= {module: module for module in modules}
    takes |= {own: own for own, layers in owners.items() if len(layers) == 1}
    close = difflib.get_close_matches(spec, sorted(takes), n=3)
    suggested = list(dict.fromkeys(takes[name] for name in close))
    return f"; did you mean {' or '.join(map(repr, suggested))}?" if suggested else ""
