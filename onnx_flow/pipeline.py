"""The pipeline, as one straight sequence: a model and options in, a report out.

    frontend -> measure -> flow -> judge -> report

Each stage is called once, in order, with what the one before it returned. One step
runs two pieces of work side by side: onnx's shape inference holds the GIL for its
whole run, so on a large graph it runs in a forked child (:func:`child.beside`) while
this process reads the nodes and prepares the flow network, which need the nodes alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
from collections.abc import Iterator
from typing import Any

from onnx_flow.errors import AuditError
from onnx_flow.flow import reduce
from onnx_flow.frontend import arguments, branches, inference, load, nodes, shapes
from onnx_flow.frontend.load import Source
from onnx_flow.frontend.stored import Stored
from onnx_flow.judge import declared, findings, heads, profile, verdict
from onnx_flow.measure import data, rank, widths
from onnx_flow.options import Measure, Options, describe
from onnx_flow.processes import child
from onnx_flow.records import ShapedGraph
from onnx_flow.report import LayerSpectrum, Report, Unused

__all__ = ["audit", "resolve", "run"]


def audit(source: Source, **settings: Any) -> Report:
    """Audit one model for information bottlenecks.

    ``source`` is the path of an ``.onnx`` file, or a model in memory (left unchanged).
    The settings are keywords, each the command line's flag by its Python name
    (``dims={"sequence": 128}`` is ``--dim sequence=128``; a list for a repeatable
    flag). A dim, input or layer the model lacks is an error.

    Raises:
        AuditError: the model or a setting cannot be audited.
    """
    return run(source, Options.checked(**settings))


audit.__doc__ = (audit.__doc__ or "").replace(
    "    Raises:", f"    Settings:\n{describe()}\n\n    Raises:"
)


def run(source: Source, options: Options) -> Report:
    """Audit one model with options already checked."""
    # The stages build millions of small objects and no reference cycles; the cyclic
    # collector's passes over them cost more than the stages (measured: the reduction
    # of a 200,000-node graph takes 2.6 s with it, 1.5 s without).
    collecting = gc.isenabled()
    gc.disable()
    try:
        model = load.load(source, nodes=options.limits.nodes)  # its errors name the file
        with _naming(source):
            # Without a declared split, the flow network needs the nodes alone: it is
            # prepared while shapes are inferred.
            graph, ahead = _shaped(model, source, options, prepare=not options.allow)
            measured = _measured(graph, source, options)
            found = findings.find(graph, vocabularies=frozenset(measured.one_hot.values()))
            # Each output that ends in a head is judged at the head's input (the trunk).
            apart = None if options.whole_model else heads.heads(graph, measured, found)
            trunk_ends = {output: head.tensor for output, head in (apart or {}).items()}
            split, unused_layers = declared.split_tensors(
                graph, measured, options.allow, lenient=options.lenient
            )
            prepared = (ahead or reduce.prepare(graph.wiring, split=split)).ending(trunk_ends)
            report = verdict.judge(
                graph,
                measured,
                prepared.weighed(measured),
                model=load.display_name(source),
                measure=options.measure,
                threshold=options.threshold,
                allow=options.allow,
                fail_on=options.fail_on,
                found=found,
                heads=apart,
                ignore=options.ignore,
            )
        report = dataclasses.replace(
            report,
            unused=(*graph.unused, *unused_layers),
            given=options.spelled(),
        )
        if options.picture:
            report = dataclasses.replace(report, profile=profile.profile(graph, measured))
        return report
    finally:
        if collecting:
            gc.enable()


def resolve(source: Source, options: Options) -> tuple[ShapedGraph, widths.Widths]:
    """The model's shaped graph and the widths of its tensors: the audit's first stages
    (for the networkx view, :func:`onnx_flow.dataflow.graph`)."""
    model = load.load(source, nodes=options.limits.nodes)
    with _naming(source):
        graph, _ = _shaped(model, source, options, prepare=False)
        return graph, _measured(graph, source, options)


def _shaped(
    model: load.Model, source: Source, options: Options, *, prepare: bool
) -> tuple[ShapedGraph, reduce.Prepared | None]:
    """The frontend: bind the dims, follow the ``If`` branches the bound inputs decide,
    refuse a model that needs more arguments (all of them named at once), infer shapes
    beside reading the nodes (and, if ``prepare``, preparing the flow network), then
    complete the shapes.

    The external-data check runs where a process would otherwise wait, and always
    before anything reads a weight (the shapes' onnxruntime run, the measures); a
    missing file is refused where weights are read (:class:`Stored`).
    """
    binding = shapes.bind(
        model,
        dims=options.dims,
        batch_dim=options.batch_dim,
        input_shapes=options.input_shapes,
        input_values=options.input_values,
        lenient=options.lenient,
    )
    followed = branches.follow(model, binding.values)
    with _saying(binding.unused):
        arguments.require(model, followed, bound=binding.dims, given=binding.given, source=source)
    with child.beside(
        functools.partial(shapes.infer, model),
        spare=functools.partial(load.check_external, model, source),
        fork=len(model.graph.node) >= inference.FORK_NODES,
        what="shape inference",
    ) as inferring:
        wiring = nodes.read(model.graph)
        ahead = reduce.prepare(wiring) if prepare else None
        constants = inference.constant_types(model.graph.initializer)  # read while the child infers
        inferred = inferring.result().including(constants)
    limits = options.limits
    graph = shapes.complete(
        model,
        wiring,
        inferred,
        binding,
        source=source,
        followed=followed,
        run_limits=(limits.run_seconds, limits.run_memory),
    )
    return graph, ahead


def _measured(graph: ShapedGraph, source: Source, options: Options) -> widths.Widths:
    """The measure: each tensor's width, capped by the weights' or the samples' ranks."""
    caps, samples, centred = None, None, None
    spectra: list[LayerSpectrum] = []
    energy = options.energy
    if options.measure is Measure.RANK:
        caps, spectra = rank.caps(graph, Stored(source, graph.branches), energy)
    elif options.measure is Measure.DATA and options.inputs is not None:
        loaded = data.load_samples(options.inputs, graph, options.limits.sample_bytes)
        centred = not options.uncentred
        stored = Stored(source, graph.branches)
        caps, spectra = data.caps(graph, stored, loaded, energy, centred=centred)
        samples = loaded.size
    with _saying(graph.unused):
        return widths.compute(
            graph,
            embedded=not options.whole_model,
            measure=options.measure,
            caps=caps,
            samples=samples,
            centred=centred,
            energy=energy,
            spectra=tuple(spectra),
        )


@contextlib.contextmanager
def _saying(unused: tuple[Unused, ...]) -> Iterator[None]:
    """Add to an error (such as a dim or shape asked for) the settings given that the
    model lacks: the likely misspelt names of what it asks for."""
    try:
        yield
    except AuditError as error:
        if not unused:
            raise
        missed = "; ".join(f"{u.option}: {u.reason}" for u in unused)
        raise AuditError(f"{error}; given, but not in the model: {missed}") from None


@contextlib.contextmanager
def _naming(source: Source) -> Iterator[None]:
    """Prefix an error with the model's name, so one among several models says which."""
    try:
        yield
    except AuditError as error:
        raise AuditError(f"{load.display_name(source)}: {error}") from None
