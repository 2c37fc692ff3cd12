"""Max-flow and cuts on random small DAGs, against oracles written independently here.

Oracles: a brute-force minimum vertex cut (every subset of tensors), networkx's own
maximum_flow and minimum_cut on the unreduced split-vertex network, and the cut
certificate (its widths sum to the flow and removing it separates inputs from outputs).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from onnx_flow.flow import network
from onnx_flow.flow.cut import solve
from onnx_flow.flow.reduce import PartKind, Prepared, output_sets, prepare, reduce
from onnx_flow.judge.verdict import judge
from onnx_flow.measure import widths
from onnx_flow.records import Node, ShapedGraph
from onnx_flow.report import Measure, Report
from tests.oracles import flow_digraph
from tests.strategies import random_dags, shaped_graph


def _prepared(graph: ShapedGraph, resolved: widths.Widths | None = None) -> Prepared:
    """The graph's flow network, prepared for every output set and weighed."""
    return prepare(graph.wiring).weighed(resolved or widths.compute(graph))


def _report(graph: ShapedGraph) -> Report:
    resolved = widths.compute(graph)
    flows = _prepared(graph, resolved)
    return judge(graph, resolved, flows, model="m", measure=Measure.ELEMENTS, threshold=1.0)


def _sizes(graph: ShapedGraph) -> dict[str, int]:
    return {name: t.shape[0] for name, t in graph.types.items()}


def _separates(graph: ShapedGraph, removed: set[str], outputs) -> bool:
    """Whether no output can be computed from an input without a removed tensor."""
    reached = {name for name in graph.inputs if name not in removed}
    for node in graph.nodes:
        if any(name in reached for name in node.inputs):
            reached.update(out for out in node.outputs if out not in removed)
    return not reached & set(outputs)


def brute_force_cut(graph: ShapedGraph, outputs) -> int:
    """Smallest total width of a set of tensors whose removal separates the outputs."""
    sizes = _sizes(graph)
    names = sorted(sizes)
    best = sum(sizes.values())
    for count in range(len(names) + 1):
        for subset in itertools.combinations(names, count):
            total = sum(sizes[n] for n in subset)
            if total < best and _separates(graph, set(subset), outputs):
                best = total
    return best


def _networkx_flow(graph: ShapedGraph, outputs, zero: str | None = None) -> int:
    resolved = widths.compute(graph)
    if zero is not None:
        resolved = widths.Widths({**resolved.known, zero: 0}, resolved.unknown, resolved.one_hot)
    digraph = flow_digraph(network.connect(graph.wiring).weighed(resolved), outputs=list(outputs))
    return int(nx.maximum_flow_value(digraph, network.SOURCE, network.SINK))


@settings(max_examples=300, deadline=None)
@given(random_dags())
def test_max_flow_equals_brute_force_minimum_vertex_cut(graph: ShapedGraph) -> None:
    flows = _prepared(graph)
    for outputs in [*([o] for o in graph.outputs), graph.outputs]:
        flow = solve(flows, outputs=outputs)
        assert flow.value == brute_force_cut(graph, outputs)
        assert flow.value == _networkx_flow(graph, outputs)


@settings(max_examples=300, deadline=None)
@given(random_dags())
def test_both_cuts_are_certificates(graph: ShapedGraph) -> None:
    sizes = _sizes(graph)
    flow = solve(_prepared(graph), outputs=graph.outputs)
    for cut in (flow.near_inputs, flow.near_outputs):
        assert sum(sizes[t] for t in cut) == flow.value
        assert _separates(graph, set(cut), graph.outputs)


# Zero-width tensors are left out here: a flowless edge of capacity 0 is "saturated",
# so which of several zero-width cuts is nearest depends on edges no flow uses.
@settings(max_examples=200, deadline=None)
@given(random_dags(min_width=1))
def test_cut_nearest_outputs_matches_networkx_minimum_cut(graph: ShapedGraph) -> None:
    flows = _prepared(graph)
    digraph = flow_digraph(flows.network, outputs=list(graph.outputs))
    _, (_, sink_side) = nx.minimum_cut(digraph, network.SOURCE, network.SINK)
    expected = {
        name
        for name in flows.network.tensors
        if ("in", name) not in sink_side and ("out", name) in sink_side
    }
    assert set(solve(flows, outputs=graph.outputs).near_outputs) == expected


@settings(max_examples=200, deadline=None)
@given(random_dags())
def test_flow_never_exceeds_reference(graph: ShapedGraph) -> None:
    report = _report(graph)
    for result in (report.total, *report.outputs):
        assert 0 <= result.max_flow <= result.reference


@settings(max_examples=200, deadline=None)
@given(random_dags(), st.data())
def test_adding_a_skip_never_lowers_the_flow(graph: ShapedGraph, data: st.DataObject) -> None:
    nodes = list(graph.nodes)
    k = data.draw(st.integers(0, len(nodes) - 1))
    earlier = [*graph.inputs, *(n.outputs[0] for n in nodes[:k])]
    skip = data.draw(st.sampled_from(earlier))
    nodes[k] = Node(nodes[k].name, "Op", "", (*nodes[k].inputs, skip), nodes[k].outputs, None)
    skipped = shaped_graph(graph.inputs, nodes, graph.outputs, _sizes(graph))
    before = solve(_prepared(graph), outputs=graph.outputs)
    after = solve(_prepared(skipped), outputs=graph.outputs)
    assert after.value >= before.value


@settings(max_examples=200, deadline=None)
@given(random_dags())
def test_bypassed_tensors_are_exactly_the_narrow_ones_other_paths_go_around(
    graph: ShapedGraph,
) -> None:
    """Narrower than the flow F, on no minimum cut, and some flow left without it that
    loses less than its width: to all outputs, and to each output it reaches."""
    report = _report(graph)
    flow = report.total.max_flow
    on_cut = {t.tensor for t in (*report.total.cut_near_inputs, *report.total.cut_near_outputs)}
    outputs = [(o, _networkx_flow(graph, [o])) for o in graph.outputs]
    expected = {}
    for name, size in _sizes(graph).items():
        if size >= flow or name in on_cut or not _is_on_a_path(graph, name, graph.outputs):
            continue
        without = _networkx_flow(graph, graph.outputs, zero=name)
        if without <= max(flow - size, 0):
            continue
        if len(outputs) > 1 and any(
            _networkx_flow(graph, [o], zero=name) <= max(alone - size, 0)
            for o, alone in outputs
            if _is_on_a_path(graph, name, [o])
        ):
            continue
        expected[name] = without
    assert {b.tensor: b.bypass for b in report.bypassed} == expected


def _is_on_a_path(graph: ShapedGraph, name: str, outputs: Sequence[str]) -> bool:
    """Whether ``name`` is computed from an input and one of ``outputs`` from it."""
    fed, reads = set(graph.inputs), {name}
    for node in graph.nodes:
        if fed & set(node.inputs):
            fed.update(node.outputs)
        if reads & set(node.inputs):
            reads.update(node.outputs)
    return name in fed and bool(reads & set(outputs))


@settings(max_examples=100, deadline=None)
@given(random_dags(max_nodes=40))
def test_larger_dags_agree_with_networkx(graph: ShapedGraph) -> None:
    flows = _prepared(graph)
    sizes = _sizes(graph)
    flow = solve(flows, outputs=graph.outputs)
    assert flow.value == _networkx_flow(graph, graph.outputs)
    for cut in (flow.near_inputs, flow.near_outputs):
        assert sum(sizes[t] for t in cut) == flow.value
        assert _separates(graph, set(cut), graph.outputs)


@settings(max_examples=200, deadline=None)
@given(random_dags())
def test_reductions_made_before_the_widths_give_the_same_report(graph: ShapedGraph) -> None:
    """The audit wires and reduces a network while shapes are inferred, and weighs it
    after: the report must be the one built from a network reduced once weighed."""
    resolved = widths.compute(graph)
    weighed = network.connect(graph.wiring).weighed(resolved)
    after = {key: reduce(weighed, outputs=key) for key in output_sets(graph.outputs)}
    for reduced in after.values():
        reduced.weigh(weighed.capacity)
    late = judge(
        graph,
        resolved,
        Prepared(weighed, after),
        model="m",
        measure=Measure.ELEMENTS,
        threshold=1.0,
    )
    assert late == _report(graph)


@settings(max_examples=200, deadline=None)
@given(random_dags(max_nodes=20))
def test_every_part_is_weighed(graph: ShapedGraph) -> None:
    """After weighing, each chain holds its tensors' widths and the narrowest of them,
    and each composite the narrowest (series) or the sum (parallel) of its children,
    including the parts set beside an unbounded join."""
    sizes = _sizes(graph)
    weighed = network.connect(graph.wiring).weighed(widths.compute(graph))
    reduced = reduce(weighed, outputs=graph.outputs)
    reduced.weigh(weighed.capacity)
    parts, pending = [], list(reduced.roots)
    while pending:
        part = pending.pop()
        parts.append(part)
        pending.extend(part.children)
    assert {id(p) for p in parts} >= {id(p) for p in reduced.leaves.values()}
    for part in parts:
        if part.kind is PartKind.CHAIN:
            assert part.capacities == [sizes[t] for t in part.tensors]
            assert part.capacity == min(part.capacities)
        else:
            children = [child.capacity for child in part.children]
            assert part.capacity == (
                min(children) if part.kind is PartKind.SERIES else sum(children)
            )


def _minimum_cuts(graph: ShapedGraph, outputs: Sequence[str]) -> list[set[str]]:
    """Every set of tensors of least total width whose removal separates the outputs."""
    sizes = _sizes(graph)
    best = brute_force_cut(graph, outputs)
    return [
        set(subset)
        for count in range(len(sizes) + 1)
        for subset in itertools.combinations(sorted(sizes), count)
        if sum(sizes[n] for n in subset) == best and _separates(graph, set(subset), outputs)
    ]


# Positive widths: a zero-width tensor would join every minimum cut as a free extra.
@settings(max_examples=300, deadline=None)
@given(random_dags(min_width=1))
def test_on_cut_is_every_tensor_of_every_minimum_cut(graph: ShapedGraph) -> None:
    flows = _prepared(graph)
    for outputs in [*([o] for o in graph.outputs), graph.outputs]:
        flow = solve(flows, outputs=outputs)
        assert set(flow.on_cut) == set().union(*_minimum_cuts(graph, outputs))


@settings(max_examples=300, deadline=None)
@given(random_dags(min_width=1))
def test_widened_is_the_flow_with_the_inner_cut_tensors_unbounded(graph: ShapedGraph) -> None:
    flows = _prepared(graph)
    flow = solve(flows, outputs=graph.outputs)
    ends = {*graph.inputs, *graph.outputs}
    lifted = [t for t in flow.on_cut if t not in ends]
    widened = flow.widened(flows.network)
    if not lifted:
        assert widened is None
        return
    assert widened is not None
    value, cut = widened
    unbounded = network.connect(graph.wiring).weighed(widths.compute(graph))
    capacity = [
        None if t in lifted else c
        for t, c in zip(unbounded.tensors, unbounded.capacity, strict=True)
    ]
    digraph = flow_digraph(
        dataclasses.replace(unbounded, capacity=tuple(capacity)), outputs=list(graph.outputs)
    )
    assert value == nx.maximum_flow_value(digraph, network.SOURCE, network.SINK)
    assert value >= flow.value  # the inputs or outputs may be as narrow
    sizes = _sizes(graph)
    assert not set(cut) & set(lifted)
    assert sum(sizes[t] for t in cut) == value
    assert _separates(graph, set(cut), graph.outputs)
    # The reduction is weighed back: the same question gets the same answer.
    again = solve(flows, outputs=graph.outputs)
    assert (again.value, again.near_inputs, again.on_cut) == (
        flow.value,
        flow.near_inputs,
        flow.on_cut,
    )
