"""How every format words a verdict, a result's figures and the layers on its cut."""

from __future__ import annotations

from onnx_flow.report import Branch, CutTensor, LayerSpectrum, OutputResult, Report

__all__ = [
    "CAPPED_WIDTH",
    "branch",
    "cut_layers",
    "cut_tensors",
    "figures",
    "narrowed",
    "spectra_title",
    "titled_cuts",
    "verdict",
    "width_heading",
]


def verdict(result: OutputResult | Report) -> str:
    """``BOTTLENECK`` or ``no bottleneck``: the headline of a result or a model."""
    return "BOTTLENECK" if result.bottleneck else "no bottleneck"


def figures(result: OutputResult, measure: str | None = None) -> str:
    """``max-flow 4 of 64 (ratio 0.0625)``, or with the measure ``(ratio 0.0625, bits)``."""
    unit = f", {measure}" if measure else ""
    return f"max-flow {result.max_flow} of {result.reference} (ratio {result.ratio:.4g}{unit})"


def cut_tensors(result: OutputResult) -> set[str]:
    """The tensors of both minimum cuts, the ones pictures mark."""
    return {t.tensor for t in (*result.cut_near_inputs, *result.cut_near_outputs)}


def cut_layers(result: OutputResult) -> str:
    """The narrowest layers of a result, nearest the inputs: ``enc.2 (Gemm, 32)``."""
    return ", ".join(
        f"{t.module or t.node or t.tensor} ({t.op or 'input'}, {t.width})"
        for t in _unique(result.cut_near_inputs)
    )


def narrowed(report: Report) -> list[LayerSpectrum]:
    """The measured layers, those whose energy rank falls furthest below their width
    first (graph order among equals)."""
    return sorted(report.spectra, key=lambda spectrum: -spectrum.shortfall)


def spectra_title(report: Report) -> str:
    """The heading of the spectra table (of a report that has spectra)."""
    energy = report.spectra[0].energy
    return f"layers whose energy rank (at {energy:g}) falls furthest below their width"


#: The width column's heading where ranks cap some widths (``rank``, ``data``).
CAPPED_WIDTH = "width or cap"


def width_heading(report: Report) -> str:
    """The width column's heading: ranks cap some widths under ``rank`` and ``data``."""
    return CAPPED_WIDTH if report.measure in ("rank", "data") else "width"


def titled_cuts(result: OutputResult) -> list[tuple[str, tuple[CutTensor, ...]]]:
    """The result's minimum cuts with their titles: one when both extremes agree."""
    if result.cut_near_inputs == result.cut_near_outputs:
        return [("minimum cut", result.cut_near_inputs)]
    return [
        ("minimum cut nearest the inputs", result.cut_near_inputs),
        ("minimum cut nearest the outputs", result.cut_near_outputs),
    ]


def branch(branch: Branch) -> str | None:
    """What the audit made of an ``If``: the branch it followed, or, where input values
    would decide it, how to choose one; ``None`` for one only a run decides."""
    inputs = ", ".join(branch.inputs)
    if branch.taken is not None:
        return f"If {branch.node!r} follows its {branch.taken}" + (
            f" (decided by {inputs})" if inputs else ""
        )
    if not branch.inputs:
        return None
    flags = " ".join(f"--input-value {name}=..." for name in branch.inputs)
    return (
        f"If {branch.node!r} is one operator over both branches: its condition reads"
        f" {inputs}; choose a branch with {flags}"
    )


def _unique(tensors: tuple[CutTensor, ...]) -> list[CutTensor]:
    return list({t.tensor: t for t in tensors}.values())
