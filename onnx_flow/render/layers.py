"""How the text-like formats name the layers on a cut."""

from __future__ import annotations

from onnx_flow.report import CutTensor, OutputResult

__all__ = ["cut_layers"]


def cut_layers(result: OutputResult) -> str:
    """The narrowest layers of a result, nearest the inputs: ``enc.2 (Gemm, 32)``."""
    return ", ".join(
        f"{t.module or t.node or t.tensor} ({t.op or 'input'}, {t.width})"
        for t in _unique(result.cut_near_inputs)
    )


def _unique(tensors: tuple[CutTensor, ...]) -> list[CutTensor]:
    return list({t.tensor: t for t in tensors}.values())
