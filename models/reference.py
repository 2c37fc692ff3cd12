"""Build the design document's reference models and export them to ONNX.

Each model is a small PyTorch module with the figures DESIGN.md gives for it. Export
them with either exporter (``dynamo=False``: TorchScript; ``dynamo=True``: the
default ``torch.export`` exporter, which writes weights as external data):

    python -m models.reference OUT_DIR          # every model, both exporters
    python -m models.reference OUT_DIR squeeze  # one model

Nothing is downloaded: GPT-2 is built from a ``transformers`` config with random weights.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

__all__ = ["MODELS", "Reference", "export_module", "export_reference", "gpt2", "main"]


@dataclass(frozen=True)
class Reference:
    """A reference model and the figures an audit must give for it."""

    build: Callable[[], nn.Module]
    example: tuple[torch.Tensor, ...]
    """Example inputs; axes named in ``dynamic`` are exported symbolic."""
    max_flow: int
    reference: int
    dynamic: dict[str, dict[int, str]] = field(default_factory=lambda: {"x": {0: "batch"}})
    """Input name -> {axis: dim name}; by default a symbolic batch axis."""
    dims: dict[str, int] = field(default_factory=dict)
    """``--dim`` bindings the audit needs (the batch dim is bound to 1 by default)."""
    output: str = "y"
    """The graph output's name (a classifier's is ``logits``, as transformers names it)."""
    whole: tuple[int, int] | None = None
    """(max-flow, reference) of the whole model (``--whole-model``), for a model whose
    head is judged apart by default; ``None``: the figures above hold in both."""

    @property
    def bottleneck(self) -> bool:
        """The verdict at the default threshold: the flow falls short of the reference."""
        return self.max_flow < self.reference

    @property
    def whole_figures(self) -> tuple[int, int]:
        """(max-flow, reference) with ``--whole-model``."""
        return self.whole or (self.max_flow, self.reference)


class Residual(nn.Module):
    """``x + up(relu(down(x)))``: a narrow branch with a full-width skip around it."""

    def __init__(self, width: int = 64, narrow: int = 4) -> None:
        super().__init__()
        self.down = nn.Linear(width, narrow)
        self.up = nn.Linear(narrow, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(torch.relu(self.down(x)))


class UNet(nn.Module):
    """Two-level U-Net on 3x32x32; the innermost tensor is 4x8x8 = 256 wide. Without
    ``skips``, each decoder level reads the level below it alone (a textbook mistake)."""

    def __init__(self, skips: bool = True) -> None:
        super().__init__()
        self.skips = skips
        joined = 2 if skips else 1  # a skip doubles what each decoder level reads
        self.enc1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.inner = nn.Sequential(nn.Conv2d(16, 4, 3, stride=2, padding=1), nn.ReLU())
        self.up2 = nn.ConvTranspose2d(4, 16, 2, stride=2)
        self.dec2 = nn.Sequential(nn.Conv2d(16 * joined, 16, 3, padding=1), nn.ReLU())
        self.up1 = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec1 = nn.Conv2d(8 * joined, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        inner = self.inner(e2)
        d2 = self.dec2(self._join(self.up2(inner), e2))
        return self.dec1(self._join(self.up1(d2), e1))

    def _join(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([up, skip], dim=1) if self.skips else up


class LanguageModelLogits(nn.Module):
    """A ``transformers`` language model over ``input_ids`` that returns only its logits;
    ``options`` go to every call (``use_cache=False`` for causal LMs)."""

    def __init__(self, model: nn.Module, **options: object) -> None:
        super().__init__()
        self.model = model
        self.options = options

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # An all-ones mask built from the input's shape: without one, transformers looks
        # for packed sequences with ``torch.diff``, which the TorchScript exporter lacks.
        mask = torch.ones_like(input_ids)
        return self.model(input_ids=input_ids, attention_mask=mask, **self.options).logits


def gpt2(layers: int = 2, width: int = 768, vocabulary: int = 50257) -> nn.Module:
    """A GPT-2 LM with random weights, built from a config (nothing downloaded)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        n_layer=layers, n_embd=width, n_head=12, vocab_size=vocabulary, n_positions=1024
    )
    config._attn_implementation = "eager"
    return LanguageModelLogits(GPT2LMHeadModel(config), use_cache=False)


class AutoEncoder(nn.Module):
    """``784-128-32-128-784``: the 32-wide latent is the encoder's last layer (``enc.2``)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 32))
        self.dec = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 784))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x))


MODELS: dict[str, Reference] = {
    # 64 -> 64 -> 4 -> 64: squeezes 64 values through the Linear(64, 4) output.
    "squeeze": Reference(
        build=lambda: nn.Sequential(
            nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4), nn.Linear(4, 64)
        ),
        example=(torch.randn(2, 64),),
        max_flow=4,
        reference=64,
    ),
    # (3,50) -> (3,100) -> (3,80): widens; the input limits the flow (fixed batch of 3).
    "widening": Reference(
        build=lambda: nn.Sequential(nn.Linear(50, 100), nn.Linear(100, 80)),
        example=(torch.randn(3, 50),),
        max_flow=150,
        reference=150,
        dynamic={},
    ),
    "residual": Reference(Residual, (torch.randn(2, 64),), max_flow=64, reference=64),
    "autoencoder": Reference(AutoEncoder, (torch.randn(2, 784),), max_flow=32, reference=784),
    "unet": Reference(UNet, (torch.randn(2, 3, 32, 32),), max_flow=3072, reference=3072),
    # The trunk, judged apart from the 768 -> 50257 lm_head: 16 ids embedded at 768 in,
    # the 16 x 768 hidden state out. The whole model: input_ids count one-hot, 16 x 50257
    # in and out, 16 x 768 through the middle.
    "gpt2": Reference(
        build=gpt2,
        example=(torch.randint(0, 50257, (2, 16)),),
        max_flow=16 * 768,
        reference=16 * 768,
        whole=(16 * 768, 16 * 50257),
        dynamic={"x": {0: "batch", 1: "sequence"}},
        dims={"sequence": 16},
    ),
}


def export_reference(reference: Reference, path: Path, *, dynamo: bool) -> Path:
    """Build ``reference``'s module (seeded: the same weights every time) and export it."""
    torch.manual_seed(0)
    return export_module(
        reference.build().eval(),
        reference.example,
        reference.dynamic,
        path,
        dynamo=dynamo,
        output=reference.output,
    )


def export_module(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    dynamic: dict[str, dict[int, str]],
    path: Path,
    *,
    dynamo: bool,
    output: str = "y",
) -> Path:
    """Export ``module`` with inputs ``x, x1, ...`` and one ``output``; axes in
    ``dynamic`` (input name -> {axis: dim name}) stay symbolic, and the output shares
    the first input's."""
    names = [f"x{i}" if i else "x" for i in range(len(example))]
    path.parent.mkdir(parents=True, exist_ok=True)
    if dynamo:
        named = {
            dim: torch.export.Dim(dim, min=1) for axes in dynamic.values() for dim in axes.values()
        }
        shapes = tuple(
            {axis: named[dim] for axis, dim in dynamic.get(n, {}).items()} or None for n in names
        )
        symbolic = {"dynamic_shapes": shapes if dynamic else None}
    else:
        symbolic = {"dynamic_axes": {**dynamic, output: dynamic.get("x", {})}}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=names,
            output_names=[output],
            dynamo=dynamo,
            **symbolic,
        )
    return path


def main(registry: dict[str, Reference] = MODELS, description: str = __doc__) -> None:
    """Export the named models of ``registry`` (all by default) with both exporters."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of {', '.join(registry)}")
    arguments = parser.parse_args()
    unknown = sorted(set(arguments.names) - set(registry))
    if unknown:
        parser.error(f"unknown model(s): {', '.join(unknown)}")
    for name in arguments.names or registry:
        for dynamo in (False, True):
            path = arguments.out / f"{name}-{'dynamo' if dynamo else 'torchscript'}.onnx"
            print(export_reference(registry[name], path, dynamo=dynamo))


if __name__ == "__main__":
    main()
