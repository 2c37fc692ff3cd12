"""Language models at full depth, judged as an ML engineer reads them: the trunk passes,
the head is one ``softmax_bottleneck`` finding, the whole model (``whole_model=True``)
fails, and the text lists no plumbing among the bypassed layers (no statistic, mask,
gate, scale or input), at most one row per attention or MLP block.

The models are ``models/architectures.py``'s ``DEEP`` (GPT-2 12, BERT-base, T5-small,
Llama 64 at small widths; their figures are derived there), each exported once a session
with the TorchScript exporter (Llama's 64 layers take about 25 s; the dynamo exporter
gives the same figures and rows, measured by hand).
"""

from __future__ import annotations

import pytest

import onnx_flow
from models.architectures import DEEP
from onnx_flow.render import text
from onnx_flow.render.wording import BYPASSED_TITLE
from onnx_flow.report import FindingKind

#: The head each model ends in: (module, d, V), read off the transformers classes:
#: GPT-2's and Llama's ``lm_head``, BERT's MLM ``cls.predictions.decoder``, T5's
#: ``lm_head``, each a d -> V map with d + 1 < V.
HEADS = {
    "gpt2_12": ("model.lm_head", 96, 50257),
    "bert_base": ("model.cls.predictions.decoder", 96, 30522),
    "t5_small": ("model.lm_head", 64, 32128),
    "llama_64": ("model.lm_head", 64, 32000),
}

#: The bypassed rows, derived by hand: (layer, in, out, flow around). GPT-2, BERT and T5
#: have no learned layer narrower than d per token (Q, K, V and the attention output are
#: d wide, the MLP 4d then d): none. Llama's grouped-query attention projects 8 query
#: heads but 4 key/value heads of size 8: k_proj and v_proj hand on 16 x 32 = 512 of
#: the 16 x 64 = 1024 they read, and the residual stream carries 1024 around the block.
#: The keys only compute the attention logits; v_proj is the one squeezed branch of
#: each block: 64 rows.
BYPASSED = {
    "gpt2_12": [],
    "bert_base": [],
    "t5_small": [],
    "llama_64": [
        (f"model.model.layers.{layer}.self_attn.v_proj", 1024, 512, 1024) for layer in range(64)
    ],
}


#: Llama's 64 layers take about a minute to export and audit twice.
NAMES = [pytest.param(n, marks=pytest.mark.long) if n == "llama_64" else n for n in sorted(DEEP)]


@pytest.mark.parametrize("name", NAMES)
def test_a_language_model_passes_on_its_trunk_and_fails_whole(exported, name: str) -> None:
    expected = DEEP[name]
    path = exported(name, "torchscript")
    report = onnx_flow.audit(path, dims=expected.dims)
    assert (report.total.max_flow, report.total.reference) == (
        expected.max_flow,
        expected.reference,
    )
    assert not report.bottleneck
    (finding,) = (f for f in report.findings if f.kind is FindingKind.SOFTMAX_BOTTLENECK)
    _, d, vocabulary = HEADS[name]
    assert (finding.module, finding.figures["d"], finding.figures["vocabulary"]) == HEADS[name]
    assert [(h.module, h.d, h.vocabulary) for h in report.heads] == [HEADS[name]]

    rows = [(r.layer, r.inputs, r.output, r.bypass) for r in report.bypassed_layers()]
    assert rows == BYPASSED[name]
    # What a person reads: the text's table lists these layers, one per block, the
    # first 12 as rows and the rest counted.
    lines = text.render([report]).splitlines()
    if not rows:
        assert BYPASSED_TITLE not in lines
    else:
        start = lines.index(BYPASSED_TITLE) + 2  # past the title and the column heads
        shown = rows[:12]
        listed = [line.split()[0] for line in lines[start : start + len(shown)]]
        assert listed == [row[0] for row in shown]
        after = lines[start + len(shown)].strip() if len(lines) > start + len(shown) else ""
        assert after.startswith(f"... and {len(rows) - 12} more") == (len(rows) > 12)
        blocks = [row[0].rpartition(".self_attn")[0] for row in rows]
        assert len(set(blocks)) == len(blocks)

    whole = onnx_flow.audit(path, dims=expected.dims, whole_model=True)
    assert (whole.total.max_flow, whole.total.reference) == expected.whole_figures
    assert whole.bottleneck and whole.heads == ()
    assert whole.total.ratio == pytest.approx(d / vocabulary)
