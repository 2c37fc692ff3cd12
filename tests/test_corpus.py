"""Real ONNX files written elsewhere (tests/corpus): trained models shipped in PyPI
wheels, and small models built once with skl2onnx, tf2onnx, jax2onnx and paddle2onnx.

Each audits to a report at the input shapes its users feed; where the manifest gives
figures derived by hand (per output too), findings, or the layer or tensor on the cut,
the report has them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import onnx_flow
from onnx_flow.report import OutputResult

CORPUS = Path(__file__).parent / "corpus"
ENTRIES = json.loads((CORPUS / "manifest.json").read_text())["files"]


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry["file"] for entry in ENTRIES])
def test_a_real_file_audits_at_the_shapes_its_users_feed(entry: dict[str, Any]) -> None:
    shapes = {name: shape for name, shape in entry["feed"].items() if shape}
    report = onnx_flow.audit(
        CORPUS / entry["file"], input_shapes=shapes, input_values=entry.get("values")
    )
    assert dict(report.inputs).keys() == {i["name"] for i in entry["inputs"]}
    assert report.total.max_flow > 0
    if entry.get("values"):  # they decide the If that holds the network
        assert report.branches[0].taken is not None
    if entry["expected"] is not None:
        assert _figures(report.total) == entry["expected"]
    if "expected_whole" in entry:  # a head judged apart by default
        whole = onnx_flow.audit(
            CORPUS / entry["file"],
            input_shapes=shapes,
            input_values=entry.get("values"),
            whole_model=True,
        )
        assert _figures(whole.total) == entry["expected_whole"]
        assert len(report.heads) == 1 and whole.heads == ()
    if "expected_outputs" in entry:
        outputs = {o.name: _figures(o) for o in report.outputs if not o.declared}
        assert outputs == entry["expected_outputs"]
        # An output's own cut is on its only path: never "bypassed" beside the others.
        cuts = {t.tensor for o in report.outputs for t in o.cut_near_inputs}
        assert cuts.isdisjoint(b.tensor for b in report.bypassed)
    if "findings" in entry:
        assert sorted({f.kind.value for f in report.findings}) == sorted(entry["findings"])
    if entry.get("cut_tensor"):  # the squeeze derived by hand, where no layer is named
        assert [t.tensor for t in report.total.cut_near_inputs] == [entry["cut_tensor"]]
    if entry.get("cut_layer"):
        # The narrowest result's cut; a layer named in the file is the user's layer.
        narrowest = min(report.outputs, key=lambda o: o.ratio)
        named = {t.module for t in narrowest.cut_near_inputs} - {None}
        assert named or not entry["producer"].startswith("tf2onnx")  # scoped node names
        assert all(_own_name(module) == entry["cut_layer"] for module in named)


def _figures(result: OutputResult) -> dict[str, int]:
    return {"max_flow": result.max_flow, "reference": result.reference}


def _own_name(module: str) -> str:
    """``two_heads_1/a_squeeze_1`` -> ``a_squeeze`` (Keras adds ``_1`` when it traces a
    layer); ``linear_16`` (paddle's own numbering) stays."""
    own = module.rpartition("/")[2]
    return own.rpartition("_")[0] if "/" in module else own
