"""Reports built by hand, record by record, for the renderers: no model is loaded or run.

Each stands for a kind of audit a format must say right; its figures are derived in
its docstring, not computed by the pipeline:

- :func:`squeeze`: one output, a bottleneck (4 of 64) at a layer that widening lifts;
- :func:`detector`: two outputs, each getting all it needs, and their joint flow;
- :func:`classifier`: ``rank`` spectra, a head judged apart with its finding, a finding
  in three layers alike, a bypassed layer beside a bypassed statistic, an unknown width;
- :func:`broken`: a model that could not be audited.
"""

from __future__ import annotations

from onnx_flow.report import (
    Bypassed,
    CutTensor,
    Failure,
    Finding,
    FindingKind,
    FindingLayer,
    Head,
    LayerSpectrum,
    Measure,
    OutputResult,
    Point,
    Profile,
    Report,
    Result,
    TensorKind,
    Unknown,
    Widened,
)

__all__ = ["ALL", "broken", "classifier", "detector", "squeeze"]


def _gemm(
    module: str, width: int, reads: int, *, cap: int | None = None, tensor: str | None = None
) -> CutTensor:
    """The output of module ``module``'s Gemm, 1 x ``width`` (``cap``: its capacity
    when a measure caps it), reading a 1 x ``reads`` tensor; named ``tensor`` (a graph
    output), else as the exporter names it."""
    return CutTensor(
        tensor or f"/{module}/Gemm_output_0",
        width if cap is None else cap,
        (1, width),
        f"/{module}/Gemm",
        "Gemm",
        module,
        reads,
        (1, reads),
    )


def _input(name: str, width: int) -> CutTensor:
    return CutTensor(name, width, (1, width), None, None, None)


def _chain(points: list[tuple[str, int, int, str, str]]) -> Profile:
    """The profile of a chain: ``(tensor, width, elements, layer, op)`` from the input
    (its layer the input's name, its op ``Input``) to the output, each point alone
    alive at its depth; ``width`` is below ``elements`` where a measure caps it."""
    nodes = [(f"/{layer}/{op}", (tensor,)) for tensor, _, _, layer, op in points[1:]]
    operators = [(f"input:{points[0][0]}", "Input", None)]
    operators += [(f"/{layer}/{op}", op, layer) for _, _, _, layer, op in points[1:]]
    operators.append((f"output:{points[-1][0]}", "Output", None))
    vertices = [vertex for vertex, _, _ in operators]
    tensors = [tensor for tensor, *_ in points]
    return Profile(
        points=tuple(
            Point(tensor, depth, width, elements, layer, width)
            for depth, (tensor, width, elements, layer, _) in enumerate(points)
        ),
        skips=(),
        operators=tuple(operators),
        edges=tuple(zip(vertices[:-1], vertices[1:], tensors, strict=True)),
        nodes=tuple(nodes),
    )


def squeeze() -> Report:
    """x [1, 64] -> enc (64 -> 64) -> down (64 -> 4) -> up (4 -> 64) -> y.

    Every path crosses down's 4 values: max-flow 4; R = min(64 in, 64 out) = 64; ratio
    4/64 = 0.0625 < 1, a bottleneck, its one minimum cut down's output. With down
    widened, the next limit is x itself: 64, a gain of 60.
    """
    down = _gemm("down", 4, 64)
    output = OutputResult(
        "y",
        4,
        64,
        1.0,
        (down,),
        (down,),
        on_cut=(down,),
        widened=Widened(64, (_input("x", 64),)),
    )
    profile = _chain(
        [
            ("x", 64, 64, "x", "Input"),
            ("/enc/Gemm_output_0", 64, 64, "enc", "Gemm"),
            (down.tensor, 4, 4, "down", "Gemm"),
            ("y", 64, 64, "up", "Gemm"),
        ]
    )
    return Report(
        model="squeeze.onnx",
        measure=Measure.ELEMENTS,
        dims=(("batch", 1),),
        threshold=1.0,
        total=output,
        outputs=(output,),
        bypassed=(),
        unknown=(),
        inputs=(("x", 64),),
        profile=profile,
    )


def detector() -> Report:
    """image [1, 48] -> trunk (48 -> 32), then boxes (32 -> 16) and scores (32 -> 4).

    boxes: R = min(48, 16) = 16, and trunk's 32 pass 16: 16 of 16, cut at boxes. scores:
    4 of 4, cut at scores. Together: R = min(48, 16 + 4) = 20, the trunk's 32 pass
    20: 20 of 20, cut at both outputs, shown but never a verdict. No bottleneck.
    """
    boxes = _gemm("boxes", 16, 32, tensor="boxes")
    scores = _gemm("scores", 4, 32, tensor="scores")
    total = OutputResult("*", 20, 20, 1.0, (boxes, scores), (boxes, scores), joint=True)
    return Report(
        model="detector.onnx",
        measure=Measure.ELEMENTS,
        dims=(),
        threshold=1.0,
        total=total,
        outputs=(
            OutputResult(boxes.tensor, 16, 16, 1.0, (boxes,), (boxes,)),
            OutputResult(scores.tensor, 4, 4, 1.0, (scores,), (scores,)),
        ),
        bypassed=(),
        unknown=(),
        inputs=(("image", 48),),
        profile=Profile(
            points=(
                Point("image", 0, 48, 48, "image", 48),
                Point("/trunk/Gemm_output_0", 1, 32, 32, "trunk", 32),
                Point(boxes.tensor, 2, 16, 16, "boxes", 20),
                Point(scores.tensor, 2, 4, 4, "scores", 20),
            ),
            skips=(),
            operators=(
                ("input:image", "Input", None),
                ("/trunk/Gemm", "Gemm", "trunk"),
                ("/boxes/Gemm", "Gemm", "boxes"),
                ("/scores/Gemm", "Gemm", "scores"),
                (f"output:{boxes.tensor}", "Output", None),
                (f"output:{scores.tensor}", "Output", None),
            ),
            edges=(
                ("input:image", "/trunk/Gemm", "image"),
                ("/trunk/Gemm", "/boxes/Gemm", "/trunk/Gemm_output_0"),
                ("/trunk/Gemm", "/scores/Gemm", "/trunk/Gemm_output_0"),
                ("/boxes/Gemm", f"output:{boxes.tensor}", boxes.tensor),
                ("/scores/Gemm", f"output:{scores.tensor}", scores.tensor),
            ),
            nodes=(
                ("/trunk/Gemm", ("/trunk/Gemm_output_0",)),
                ("/boxes/Gemm", (boxes.tensor,)),
                ("/scores/Gemm", (scores.tensor,)),
            ),
        ),
    )


def classifier() -> Report:
    """x [1, 8] -> hidden (8 -> 32) -> three attention blocks with residuals, each with
    an adapter (32 -> 2 -> 32) beside it -> head (32 -> 100 logits), under ``rank`` at
    energy 0.99.

    hidden's weight (32 x 8) holds 0.99 of its energy in 6 directions where a random 32
    x 8 matrix needs 8: 2 below, capped at 6. The head is judged apart: the trunk ends
    at the head's input, R = min(8, 32) = 8, F = 6, ratio 0.75 < 1, a bottleneck. The
    head maps 32 to 100 logits: rank at most 33 of 100 (softmax finding, ratio 0.33).
    Each block's 4-wide heads (queries and keys 16) give one finding for the three.
    adapter.0's 2 values are bypassed, 32 flowing around (6 with the cap, then: the
    figure is the flow with it removed, kept as given); its LayerNorm's mean is a
    statistic, never listed. The attention mask's width is unknown.
    """
    hidden = _gemm("hidden", 32, 8, cap=6)
    head = Head("/blocks.2/Add_output_0", 32, "/head/Gemm", "head", 32, 100)
    output = OutputResult("logits", 6, 8, 1.0, (hidden,), (hidden,), on_cut=(hidden,), head=head)
    layers = tuple(
        FindingLayer(f"/blocks.{i}/attention/Softmax", f"blocks.{i}.attention", f"/blocks.{i}/s")
        for i in range(3)
    )
    findings = (
        Finding(
            FindingKind.SOFTMAX_BOTTLENECK,
            "head maps width 32 to 100 logits: the log-probabilities have rank at most 33"
            " of 100 (ratio 0.33)",
            "/head/Gemm",
            "head",
            "logits",
            {"d": 32, "vocabulary": 100, "ratio": 0.33},
        ),
        Finding(
            FindingKind.ATTENTION_HEAD_RANK,
            "3 layers (blocks.*.attention): head size 4 is below 16 queries x 16 keys: the"
            " head's logits have rank at most 4",
            layers[0].node,
            "blocks.*.attention",
            layers[0].tensor,
            {"head_size": 4, "queries": 16, "keys": 16, "heads": 1},
            layers,
        ),
    )
    spectra = (
        LayerSpectrum(
            hidden.tensor, hidden.node, "hidden", "Gemm", 8, 8, 6, 3.25, 5.5, 0.99,
            matrix=(32, 8), baseline_energy_rank=8, baseline_stable_rank=4.5, margin=2,
            capped=True,
        ),
        LayerSpectrum(
            "logits", "/head/Gemm", "head", "Gemm", 32, 32, 30, 12.0, 27.25, 0.99,
            matrix=(100, 32), baseline_energy_rank=30, baseline_stable_rank=12.5,
        ),
    )  # fmt: skip
    bypassed = (
        Bypassed("/adapter.0/down/Gemm_output_0", 2, "/adapter.0/down/Gemm", "Gemm",
                 "adapter.0.down", 32, TensorKind.LAYER, 32),
        Bypassed("/blocks.0/norm/ReduceMean_output_0", 1, "/blocks.0/norm/ReduceMean",
                 "ReduceMean", "blocks.0.norm", 32, TensorKind.STATISTIC),
    )  # fmt: skip
    return Report(
        model="classifier.onnx",
        measure=Measure.RANK,
        dims=(("sequence", 16),),
        threshold=1.0,
        total=output,
        outputs=(output,),
        bypassed=bypassed,
        unknown=(Unknown("mask", "Shape of a tensor of unknown rank", "/mask/Shape"),),
        inputs=(("x", 8),),
        given=(("measure", "--measure rank"), ("energy", "--energy 0.99")),
        findings=findings,
        energy=0.99,
        spectra=spectra,
        profile=_chain(
            [
                ("x", 8, 8, "x", "Input"),
                (hidden.tensor, 6, 32, "hidden", "Gemm"),
                (head.tensor, 32, 32, "blocks.2", "Add"),
                ("logits", 100, 100, "head", "Gemm"),
            ]
        ),
    )


def broken() -> Failure:
    """A file that is no ONNX model."""
    return Failure("broken.onnx", "broken.onnx: not an ONNX model (a protobuf parse error)")


#: Every case by name, in the order the several-models golden files list them.
ALL: dict[str, Result] = {
    "squeeze": squeeze(),
    "detector": detector(),
    "classifier": classifier(),
    "broken": broken(),
}
