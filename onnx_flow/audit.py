"""Compose the stages: a model and options in, a report out."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
from collections.abc import Callable, Iterator, Sequence

import onnx

from onnx_flow import activations, declared, load, network, profile, rank, shapes, verdict, widths
from onnx_flow.errors import AuditError
from onnx_flow.options import Options
from onnx_flow.report import Report

__all__ = ["audit", "resolve", "run"]


def audit(
    source: str | os.PathLike[str] | onnx.ModelProto,
    *,
    dims: dict[str, int] | None = None,
    batch_dim: str | None = None,
    measure: str = "elements",
    threshold: float = 1.0,
    allow: Sequence[str] = (),
    inputs: str | None = None,
    fail_on: Sequence[str] = (),
) -> Report:
    """Audit one model for information bottlenecks.

    Args:
        source: path of an ``.onnx`` file, or a model in memory (left unchanged).
        dims: sizes of named symbolic dims (``{"sequence": 128}``).
        batch_dim: the dim bound to 1; by default the symbolic axis 0 of the data inputs.
        measure: ``elements`` (product of dims), ``bits`` (elements x dtype bits) or
            ``rank`` (elements, linear maps capped at their weight's rank; reads weights)
            or ``data`` (elements, each tensor capped at the rank of its activations over
            the samples in ``inputs``; runs the model).
        threshold: a ratio below this is a bottleneck.
        inputs: for the ``data`` measure, an ``.npz`` file: one array per graph input,
            first axis = sample.
        fail_on: finding kinds (``softmax_bottleneck``, ``attention_head_rank``,
            ``attention_without_skip``, or ``all``) that make ``report.failing`` true.
        allow: declared bottlenecks (tensor names, node names or module paths such as
            ``enc.2``): the model is split at what they hand on, so their squeeze passes.

    Raises:
        AuditError: the model or an option cannot be audited.
    """
    options = Options.checked(
        dims=dims,
        batch_dim=batch_dim,
        measure=measure,
        threshold=threshold,
        allow=allow,
        inputs=inputs,
        fail_on=fail_on,
    )
    return run(source, options)


def run(source: str | os.PathLike[str] | onnx.ModelProto, options: Options) -> Report:
    """Audit one model with options already checked."""
    # The stages build millions of small objects and no reference cycles; the cyclic
    # collector's passes over them cost more than the stages (measured: the reduction
    # of a 200,000-node graph takes 2.6 s with it, 1.5 s without).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _run(source, options)
    finally:
        if collecting:
            gc.enable()


def _run(source: str | os.PathLike[str] | onnx.ModelProto, options: Options) -> Report:
    # Without a declared split, the flow network's wiring and reductions need the nodes
    # alone: they are made while shapes are inferred.
    ahead = _Ahead()
    graph, resolved = resolve(source, options, wired=None if options.allow else ahead.wire)
    with _naming(source):
        split = declared.split_tensors(graph, resolved, options.allow)
        wired = ahead.network_for(graph) or network.connect(graph.wiring, split=split)
        report = verdict.judge(
            graph,
            resolved,
            wired.weighed(resolved),
            model=load.display_name(source),
            measure=options.measure.value,
            threshold=options.threshold,
            allow=options.allow,
            fail_on=options.fail_on,
        )
    if options.picture:
        report = dataclasses.replace(report, profile=profile.profile(graph, resolved))
    return report


def resolve(
    source: str | os.PathLike[str] | onnx.ModelProto,
    options: Options,
    *,
    wired: Callable[[shapes.Wiring], object] | None = None,
) -> tuple[shapes.ShapedGraph, widths.Widths]:
    """Load the model, infer its shapes and resolve the widths of its tensors.

    ``wired`` is given the nodes' wiring while the shapes are inferred.
    """
    model = load.load(source)  # its errors name the file already
    with _naming(source):
        graph = shapes.infer(
            model,
            dims=options.dims,
            batch_dim=options.batch_dim,
            stored=lambda: load.stored(source),
            check=lambda: load.check_external(model, source),
            beside=wired,
        )
        caps, count = None, None
        if options.measure is widths.Measure.RANK:
            caps = rank.caps(graph, lambda: load.stored(source))
        elif options.measure is widths.Measure.DATA and options.inputs is not None:
            samples = activations.load_samples(options.inputs, graph)
            caps, count = (
                activations.caps(graph, lambda: load.stored(source), samples),
                len(samples),
            )
        return graph, widths.compute(graph, measure=options.measure, caps=caps, samples=count)


class _Ahead:
    """The flow network wired and reduced from the nodes as first read."""

    def __init__(self) -> None:
        self._nodes: tuple[shapes.Node, ...] | None = None
        self._network: network.FlowNetwork | None = None

    def wire(self, wiring: shapes.Wiring) -> None:
        self._nodes, self._network = wiring.nodes, network.connect(wiring)
        verdict.reduce_ahead(self._network, wiring.outputs)

    def network_for(self, graph: shapes.ShapedGraph) -> network.FlowNetwork | None:
        """The network wired ahead, unless folding constants changed the nodes since."""
        return self._network if graph.nodes is self._nodes else None


@contextlib.contextmanager
def _naming(source: str | os.PathLike[str] | onnx.ModelProto) -> Iterator[None]:
    """Prefix an error with the model's name, so one among several models says which."""
    try:
        yield
    except AuditError as error:
        raise AuditError(f"{load.display_name(source)}: {error}") from None
