"""Real architectures from ``transformers`` configs (random weights, nothing downloaded).

Small configs of BERT (masked LM), T5 (encoder-decoder LM), ViT and ResNet image
classifiers, each with the figures an audit must give, derived by hand below; and
``DEEP``: GPT-2 12, BERT-base, T5-small and Llama 64 at their depth and vocabulary, small
widths. Export them like the reference models:

    python -m models.architectures OUT_DIR [NAME...]
"""

from __future__ import annotations

import torch
from torch import nn

from models.reference import LanguageModelLogits, Reference, main

__all__ = ["ARCHITECTURES", "DEEP"]

VOCABULARY, HIDDEN = 1000, 32
SEQUENCE, TARGET = 8, 4
LABELS = 100


class Seq2SeqLanguageModel(nn.Module):
    """An encoder-decoder LM over ``input_ids`` and ``decoder_input_ids``; returns logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(
            input_ids=input_ids, decoder_input_ids=decoder_input_ids, use_cache=False
        ).logits


class ImageClassifier(nn.Module):
    """An image classifier over ``pixel_values``; returns logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


class MaskedLanguageModel(nn.Module):
    """A masked LM over ``input_ids`` and the caller's ``attention_mask``; returns logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def bert(attention: str = "eager") -> nn.Module:
    """BERT as a masked LM; with ``sdpa`` attention it takes an attention mask too (the
    mask is added to the scores through ``Where``, K transposed and scaled on both
    sides, as SDPA decomposes)."""
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=VOCABULARY,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=4 * HIDDEN,
        max_position_embeddings=64,
    )
    config._attn_implementation = attention
    if attention == "eager":
        return LanguageModelLogits(BertForMaskedLM(config))
    return MaskedLanguageModel(BertForMaskedLM(config))


def t5() -> nn.Module:
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=VOCABULARY,
        d_model=HIDDEN,
        d_kv=8,
        num_heads=4,
        d_ff=4 * HIDDEN,
        num_layers=2,
        num_decoder_layers=2,
        use_cache=False,
    )
    config._attn_implementation = "eager"
    return Seq2SeqLanguageModel(T5ForConditionalGeneration(config))


def vit(hidden: int = HIDDEN, layers: int = 2, heads: int = 2, labels: int = LABELS) -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * HIDDEN,
        image_size=32,
        patch_size=8,
        num_labels=labels,
    )
    config._attn_implementation = "eager"
    return ImageClassifier(ViTForImageClassification(config))


def resnet(widest: int = HIDDEN, labels: int = LABELS) -> nn.Module:
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(
        embedding_size=16,
        hidden_sizes=[16, widest],
        depths=[1, 1],
        layer_type="basic",
        num_labels=labels,
    )
    return ImageClassifier(ResNetForImageClassification(config))


def llama() -> nn.Module:
    """Grouped-query attention: 4 query heads share 2 key/value heads (head size 8)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCABULARY,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    config._attn_implementation = "eager"
    return LanguageModelLogits(LlamaForCausalLM(config), use_cache=False)


_TOKENS = {"x": {0: "batch", 1: "sequence"}}
_IMAGE = (torch.randn(2, 3, 32, 32),)

ARCHITECTURES: dict[str, Reference] = {
    # The trunk, judged apart from the 32 -> 1000 decoder: 8 ids embedded at 32 in, the
    # 8 x 32 hidden state out. The whole model: token ids count one-hot (V each), 8 x 1000
    # in, 8 x 1000 logits out; every path passes the 32-wide hidden state of each token:
    # the softmax bottleneck d / V.
    "bert": Reference(
        build=bert,
        example=(torch.randint(0, VOCABULARY, (2, SEQUENCE)),),
        max_flow=SEQUENCE * HIDDEN,
        reference=SEQUENCE * HIDDEN,
        whole=(SEQUENCE * HIDDEN, SEQUENCE * VOCABULARY),
        dynamic=_TOKENS,
        dims={"sequence": SEQUENCE},
    ),
    # The same with SDPA attention and the caller's mask (an int input, 8 wide): R is
    # still the 8 x 32 hidden state (whole model: the 8 x 1000 logits). Head size 16 is
    # below 32 positions: one finding a layer.
    "bert_masked": Reference(
        build=lambda: bert("sdpa"),
        example=(
            torch.randint(0, VOCABULARY, (2, SEQUENCE)),
            torch.ones(2, SEQUENCE, dtype=torch.int64),
        ),
        max_flow=SEQUENCE * HIDDEN,
        reference=SEQUENCE * HIDDEN,
        whole=(SEQUENCE * HIDDEN, SEQUENCE * VOCABULARY),
        dynamic={"x": {0: "batch", 1: "sequence"}, "x1": {0: "batch", 1: "sequence"}},
        dims={"sequence": SEQUENCE},
    ),
    # A causal LM like BERT's figures: 16 tokens, d = 32 per token, V = 1000.
    "llama": Reference(
        build=llama,
        example=(torch.randint(0, VOCABULARY, (2, 16)),),
        max_flow=16 * HIDDEN,
        reference=16 * HIDDEN,
        whole=(16 * HIDDEN, 16 * VOCABULARY),
        dynamic=_TOKENS,
        dims={"sequence": 16},
    ),
    # Inputs 8 and 4 tokens, logits for the 4 decoder positions. The decoder's last hidden
    # state (4 x 32) carries everything to the logits: the trunk's R and F. The whole
    # model: the ids count one-hot, R = 4 x V.
    "t5": Reference(
        build=t5,
        example=(
            torch.randint(0, VOCABULARY, (2, SEQUENCE)),
            torch.randint(0, VOCABULARY, (2, TARGET)),
        ),
        max_flow=TARGET * HIDDEN,
        reference=TARGET * HIDDEN,
        whole=(TARGET * HIDDEN, TARGET * VOCABULARY),
        dynamic={"x": {0: "batch"}, "x1": {0: "batch"}},
    ),
    # 3x32x32 = 3072 in, 100 logits out. The classifier reads the [CLS] token only, 32
    # wide: the trunk delivers it whole (the whole model: 32 of R = 100).
    "vit": Reference(
        build=vit,
        example=_IMAGE,
        max_flow=HIDDEN,
        reference=HIDDEN,
        output="logits",
        whole=(HIDDEN, LABELS),
    ),
    # Stages 16 then 32 channels, global average pooling to 32 values, then 100 logits.
    "resnet": Reference(
        build=resnet,
        example=_IMAGE,
        max_flow=HIDDEN,
        reference=HIDDEN,
        output="logits",
        whole=(HIDDEN, LABELS),
    ),
    # A classifier head like ViT-Base's, 768 -> 1000: the [CLS] token carries 768 of the
    # 1000 logits (the softmax bottleneck's ratio is (768 + 1) / 1000).
    "vit768": Reference(
        build=lambda: vit(hidden=768, layers=1, heads=12, labels=1000),
        example=_IMAGE,
        max_flow=768,
        reference=768,
        output="logits",
        whole=(768, 1000),
    ),
    # A head like ResNet-18's, 512 -> 1000: the stem (16 x 8 x 8 = 1024) and the last
    # stage (512 x 4 x 4) are wider than the pooled 512, which the trunk delivers whole;
    # the whole model: 512 of the 1000 logits (ratio 0.512).
    "resnet512": Reference(
        build=lambda: resnet(widest=512, labels=1000),
        example=_IMAGE,
        max_flow=512,
        reference=512,
        output="logits",
        whole=(512, 1000),
    ),
    # A head like ResNet-50's, 2048 -> 1000: wide enough. The stem (16 x 8 x 8 = 1024)
    # and the pooled 2048 are above the 1000 logits: no squeeze.
    "resnet2048": Reference(
        build=lambda: resnet(widest=2048, labels=1000),
        example=_IMAGE,
        max_flow=1000,
        reference=1000,
        output="logits",
    ),
}


def gpt2_12() -> nn.Module:
    """GPT-2's 12 layers and 12 heads at d = 96 (head size 8), its vocabulary 50257."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=12, n_embd=96, n_head=12, vocab_size=50257, n_positions=64)
    config._attn_implementation = "eager"
    return LanguageModelLogits(GPT2LMHeadModel(config), use_cache=False)


def bert_base() -> nn.Module:
    """BERT-base's 12 layers and 12 heads at d = 96, its vocabulary 30522."""
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=30522,
        hidden_size=96,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=4 * 96,
        max_position_embeddings=64,
    )
    config._attn_implementation = "eager"
    return LanguageModelLogits(BertForMaskedLM(config))


def t5_small() -> nn.Module:
    """T5-small's 6 + 6 layers and 8 heads at d_model = 64 (d_kv 8), vocabulary 32128."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=32128,
        d_model=64,
        d_kv=8,
        num_heads=8,
        d_ff=4 * 64,
        num_layers=6,
        num_decoder_layers=6,
        use_cache=False,
    )
    config._attn_implementation = "eager"
    return Seq2SeqLanguageModel(T5ForConditionalGeneration(config))


def llama_64() -> nn.Module:
    """64 Llama layers at d = 64: 8 query heads of size 8 sharing 4 key/value heads
    (grouped-query attention, as ``bench/bench_audit.py``'s decoder), vocabulary 32000."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=64,
        intermediate_size=2 * 64,
        num_hidden_layers=64,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )
    config._attn_implementation = "eager"
    return LanguageModelLogits(LlamaForCausalLM(config), use_cache=False)


#: Full-depth language models (the issue's GPT-2 12, BERT-base, T5-small, Llama 64) at
#: small widths: what they must show (a trunk that passes, one softmax_bottleneck, a
#: failing whole model, no plumbing among the bypassed layers) does not depend on d.
#: Figures per token: the trunk ends at the head's input, d per position; the inputs are
#: ids embedded at d. The whole model: the ids count one-hot (V each) and R = the logits.
DEEP: dict[str, Reference] = {
    # 16 ids x 96 in, 16 x 96 to lm_head; whole: 1536 of 16 x 50257 = 804112.
    "gpt2_12": Reference(
        build=gpt2_12,
        example=(torch.randint(0, 50257, (2, 16)),),
        max_flow=16 * 96,
        reference=16 * 96,
        whole=(16 * 96, 16 * 50257),
    ),
    # 16 x 96 to the MLM decoder (after its dense + LayerNorm transform); whole:
    # 1536 of 16 x 30522 = 488352.
    "bert_base": Reference(
        build=bert_base,
        example=(torch.randint(0, 30522, (2, 16)),),
        max_flow=16 * 96,
        reference=16 * 96,
        whole=(16 * 96, 16 * 30522),
    ),
    # 16 encoder and 8 decoder ids (1536 embedded); the decoder's last hidden state,
    # 8 x 64 = 512, reaches lm_head; whole: 512 of 8 x 32128 = 257024.
    "t5_small": Reference(
        build=t5_small,
        example=(torch.randint(0, 32128, (2, 16)), torch.randint(0, 32128, (2, 8))),
        max_flow=8 * 64,
        reference=8 * 64,
        whole=(8 * 64, 8 * 32128),
        dynamic={"x": {0: "batch"}, "x1": {0: "batch"}},
    ),
    # 16 x 64 to lm_head; whole: 1024 of 16 x 32000 = 512000.
    "llama_64": Reference(
        build=llama_64,
        example=(torch.randint(0, 32000, (2, 16)),),
        max_flow=16 * 64,
        reference=16 * 64,
        whole=(16 * 64, 16 * 32000),
    ),
}


if __name__ == "__main__":
    main({**ARCHITECTURES, **DEEP}, __doc__)
