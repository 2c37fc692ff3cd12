"""The pipeline, as one straight sequence: a model and options in, a report out.

    frontend -> measure -> flow -> judge -> report

Each stage is called once, in order, with what the one before it returned. One step
runs two pieces of work side by side: onnx's shape inference holds the GIL for its
whole run, so on a large graph it runs in a forked child (:func:`fork.beside`) while
this process reads the nodes and prepares the flow network, which need the nodes alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
from collections.abc import Iterator, Mapping, Sequence

from onnx_flow.errors import AuditError
from onnx_flow.flow import reduce
from onnx_flow.frontend import arguments, branches, fork, infer, load, nodes, shapes
from onnx_flow.frontend.load import Source
from onnx_flow.frontend.stored import Stored
from onnx_flow.judge import declared, findings, heads, profile, verdict
from onnx_flow.measure import data, rank, widths
from onnx_flow.options import Measure, Options
from onnx_flow.records import ShapedGraph
from onnx_flow.report import LayerSpectrum, Report

__all__ = ["audit", "resolve", "run"]


def audit(
    source: Source,
    *,
    dims: dict[str, int] | None = None,
    batch_dim: str | None = None,
    measure: str = "elements",
    threshold: float = 1.0,
    allow: Sequence[str] = (),
    inputs: str | None = None,
    fail_on: Sequence[str] = (),
    ignore: Sequence[str] = (),
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    input_values: Mapping[str, Sequence[float] | float] | None = None,
    energy: float | None = None,
    limits: Mapping[str, int] | None = None,
    whole_model: bool = False,
    uncentred: bool = False,
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
        ignore: finding kinds (the same, or ``all``) left out of the report; its
            ``ignored`` names them. A kind named in both is an error; ``fail_on``'s
            ``all`` means every kind not ignored.
        allow: declared bottlenecks (tensor names, node names or module paths such as
            ``enc.2``): the model is split at what they hand on, so their squeeze passes.
        input_shapes: whole shapes of data inputs (``{"x": [1, 3, 640, 640]}``), for
            dims that have no usable name.
        input_values: values of small data inputs (``{"use_cache_branch": 0}``): an
            ``If`` whose condition they decide is audited as the branch it takes.
        energy: for ``rank`` and ``data``, cap at the energy rank: the fewest singular
            values holding this fraction (0 < energy <= 1) of the sum of their squares;
            ``None``: the numerical rank.
        limits: budgets by their ``--limit`` names (``{"nodes": 500000}``); see
            :class:`~onnx_flow.options.Limits` for each and its default.
        whole_model: judge the whole model, the logits its reference; by default a head
            that ends the model in a fixed linear map to logits (d -> V, d + 1 < V) is
            judged apart: the trunk up to its input, the head as a finding.
        uncentred: for ``data``, the rank of the activations themselves; by default of
            their differences from their mean (the mean tells nothing about which
            sample came in).

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
        ignore=ignore,
        input_shapes=input_shapes,
        input_values=input_values,
        energy=energy,
        limits=limits,
        whole_model=whole_model,
        uncentred=uncentred,
    )
    return run(source, options)


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
            split = declared.split_tensors(graph, measured, options.allow)
            prepared = (ahead or reduce.prepare(graph.wiring, split=split)).ending(trunk_ends)
            report = verdict.judge(
                graph,
                measured,
                prepared.weighed(measured),
                model=load.display_name(source),
                measure=options.measure.value,
                threshold=options.threshold,
                allow=options.allow,
                fail_on=options.fail_on,
                found=found,
                heads=apart,
                ignore=options.ignore,
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
        dims_where_declared=options.dims_where_declared,
    )
    followed = branches.follow(model, binding.values)
    arguments.require(model, followed, bound=binding.dims, given=binding.given, source=source)
    with fork.beside(
        functools.partial(shapes.infer, model),
        spare=functools.partial(load.check_external, model, source),
        fork=len(model.graph.node) >= infer.FORK_NODES,
        what="shape inference",
    ) as inferring:
        wiring = nodes.read(model.graph)
        ahead = reduce.prepare(wiring) if prepare else None
        constants = infer.constant_types(model.graph.initializer)  # read while the child infers
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
def _naming(source: Source) -> Iterator[None]:
    """Prefix an error with the model's name, so one among several models says which."""
    try:
        yield
    except AuditError as error:
        raise AuditError(f"{load.display_name(source)}: {error}") from None
