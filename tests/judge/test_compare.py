"""``onnx-flow diff OLD NEW``: exit 1 when the new version squeezes harder or newly,
adds a failing finding or loses a skip, with the reason in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import onnx_flow
from models.reference import export_module
from onnx_flow.judge.compare import compare
from onnx_flow.render.comparison import render
from tests.judge.test_findings import attention_stack
from tests.onnx_builders import linear, model, squeeze_mlp
from tests.runner import invoke


def _mlp(tmp_path: Path, name: str, narrow: int) -> Path:
    """x (64) -> narrow -> 64."""
    path = tmp_path / f"{name}.onnx"
    onnx.save(squeeze_mlp(narrow=narrow), path)
    return path


def test_a_lower_ratio_is_a_regression(tmp_path: Path) -> None:
    old, new = _mlp(tmp_path, "old", 8), _mlp(tmp_path, "new", 4)
    result = invoke("diff", old, new, "--format", "json")
    assert result.returncode == 1
    change = json.loads(result.stdout)["outputs"][0]
    assert (change["old"]["ratio"], change["new"]["ratio"]) == (8 / 64, 4 / 64)
    assert change["regressed"] and change["new"]["cut"] == "down (MatMul, 4)"


def test_a_higher_ratio_is_not(tmp_path: Path) -> None:
    old, new = _mlp(tmp_path, "old", 4), _mlp(tmp_path, "new", 8)
    result = invoke("diff", old, new)
    assert result.returncode == 0 and "better" in result.stdout


def test_a_new_bottleneck_is_a_regression(tmp_path: Path) -> None:
    old, new = _mlp(tmp_path, "old", 64), _mlp(tmp_path, "new", 32)
    assert invoke("diff", old, new).returncode == 1
    assert invoke("diff", new, old).returncode == 0


def test_the_same_model_is_no_regression(tmp_path: Path) -> None:
    path = _mlp(tmp_path, "m", 4)
    assert invoke("diff", path, path).returncode == 0


def test_a_declared_squeeze_passes_in_both(tmp_path: Path) -> None:
    old, new = _mlp(tmp_path, "old", 8), _mlp(tmp_path, "new", 4)
    assert invoke("diff", old, new, "--allow", "down").returncode == 0


def test_a_model_that_cannot_be_read_is_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"nope")
    result = invoke("diff", _mlp(tmp_path, "m", 4), broken)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1


def test_markdown_goes_to_the_output_file(tmp_path: Path) -> None:
    old, new = _mlp(tmp_path, "old", 8), _mlp(tmp_path, "new", 4)
    target = tmp_path / "comment.md"
    result = invoke("diff", old, new, "--format", "markdown", "--output", target)
    assert result.returncode == 1 and result.stdout == ""
    lines = target.read_text().splitlines()
    assert lines[0] == "## onnx-flow diff"
    assert lines[2] == (
        f"{old} -> {new}: **regressed**: up: 4 of 64 (0.0625), was 8 of 64 (0.125),"
        " at down (MatMul, 4)."
    )
    assert lines[-1] == "| up | 8 of 64 (0.125) | 4 of 64 (0.0625) | worse | down (MatMul, 4) |"


def test_a_new_bottleneck_names_the_layers_newly_on_the_cut() -> None:
    """64 -> 64 -> 64 passes with its cuts at the input x and the output layer up; at 32
    wide, down is the cut."""
    old, new = (onnx_flow.audit(squeeze_mlp(narrow=n)) for n in (64, 32))
    comparison = compare(old, new)
    assert comparison.newly_on_cut == ("down",)
    assert json.loads(render(comparison, "json"))["reasons"] == [
        "up: new bottleneck 32 of 64 (0.5) at down (MatMul, 32)"
    ]


class _Attention(nn.Module):
    """Single-head attention written out: o(softmax(q k^T / sqrt(d)) v)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(width, width) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.q(x) @ self.k(x).transpose(-1, -2) / x.shape[-1] ** 0.5
        return self.o(scores.softmax(-1) @ self.v(x))


class _Block(nn.Module):
    """Attention, then an MLP with its residual; the attention's residual optional."""

    def __init__(self, width: int, residual: bool) -> None:
        super().__init__()
        self.residual = residual
        self.attn = _Attention(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 2 * width), nn.ReLU(), nn.Linear(2 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attended = self.attn(x)
        x = x + attended if self.residual else attended
        return x + self.mlp(x)


class _Transformer(nn.Module):
    def __init__(self, residual: bool, width: int = 16, layers: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Block(width, residual) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


@pytest.fixture(scope="module")
def transformers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two blocks over x[1, 8, 16], with and without the residuals around attention."""
    folder = tmp_path_factory.mktemp("transformers")
    paths = []
    for residual in (True, False):
        torch.manual_seed(0)
        paths.append(
            export_module(
                _Transformer(residual).eval(),
                (torch.randn(1, 8, 16),),
                {},
                folder / f"residual-{residual}.onnx",
                dynamo=False,
            )
        )
    return paths[0], paths[1]


def test_removing_the_attention_residuals_regresses_in_one_line(transformers) -> None:
    """Both blocks' attentions lose their residual; 8 x 16 = 128 still flows (no
    bottleneck), so the findings alone say it, even without --fail-on."""
    with_skips, without = transformers
    result = invoke("diff", with_skips, without)
    assert result.returncode == 1
    assert result.stdout.splitlines()[1] == (
        "REGRESSED: attention without a skip at layers.0.attn, layers.1.attn (new)"
    )


def test_the_lost_residuals_in_json(transformers) -> None:
    with_skips, without = transformers
    result = invoke("diff", with_skips, without, "--format", "json")
    comparison = json.loads(result.stdout)
    assert comparison["regressed"] and comparison["reasons"] == [
        "attention without a skip at layers.0.attn, layers.1.attn (new)"
    ]
    # One finding stands for both layers (up to 2 in a row): the diff names each layer.
    added = [(f["kind"], f["module"], f["depth"]) for f in comparison["findings_added"]]
    assert added == [
        ("attention_without_skip", "layers.0.attn", 2),
        ("attention_without_skip", "layers.1.attn", 2),
    ]
    assert comparison["skips_lost"] == ["layers.0.attn", "layers.1.attn"]
    assert comparison["findings_removed"] == comparison["newly_on_cut"] == []


def test_restoring_the_residuals_is_no_regression(transformers) -> None:
    with_skips, without = transformers
    result = invoke("diff", without, with_skips, "--fail-on", "all")
    assert result.returncode == 0
    assert result.stdout.splitlines()[1] == "no regression"
    assert result.stdout.splitlines()[-1] == (
        "findings removed: attention_without_skip at layers.0.attn, layers.1.attn"
    )


def test_the_lost_residuals_in_markdown(transformers) -> None:
    with_skips, without = transformers
    lines = render(compare(*(onnx_flow.audit(p) for p in transformers)), "markdown").splitlines()
    assert lines[2] == (
        f"{with_skips} -> {without}: **regressed**: attention without a skip at"
        " layers.0.attn, layers.1.attn (new)."
    )
    assert lines[-1] == "- findings added: attention_without_skip at layers.0.attn, layers.1.attn"


@pytest.mark.parametrize("residual", [True, False])
def test_the_transformer_against_itself_is_no_regression(transformers, residual: bool) -> None:
    path = transformers[0 if residual else 1]
    result = invoke("diff", path, path, "--fail-on", "all", "--format", "json")
    assert result.returncode == 0
    comparison = json.loads(result.stdout)
    changes = ("findings_added", "findings_removed", "newly_on_cut", "no_longer_bypassed")
    assert [comparison[key] for key in (*changes, "skips_lost", "spectra_fell", "reasons")] == [
        []
    ] * 7


@pytest.mark.parametrize(
    ("old", "new", "flags", "code"),
    [
        (4, 6, ["--fail-on", "attention_head_rank"], 1),
        (4, 6, ["--fail-on", "all"], 1),
        (4, 6, [], 0),
        (6, 4, ["--fail-on", "attention_head_rank"], 0),
    ],
)
def test_a_failing_finding_that_appears_regresses(
    tmp_path: Path, old: int, new: int, flags: list[str], code: int
) -> None:
    """Head size 4: below 6 positions (a finding per attention), not below 4. The
    residual stacks have no bottleneck."""
    paths = []
    for positions in (old, new):
        paths.append(tmp_path / f"stack-{positions}.onnx")
        onnx.save(attention_stack(2, residual=True, n=positions, d=4), paths[-1])
    result = invoke("diff", *paths, *flags)
    assert result.returncode == code, result.stderr
    if code:
        assert result.stdout.splitlines()[1] == (
            "REGRESSED: attention head rank below the sequence at block0, block1 (new)"
        )


def _adapter(*, squeeze: int = 64, narrow: int, skip: bool) -> onnx.ModelProto:
    """x[1, 64] -> a (64 -> squeeze) -> b (-> 64) = h; y = h + up(relu(down(h))) with
    down 64 -> narrow, or without the skip y = up(relu(down(h)))."""
    nodes, weights = [], []
    for name, source, inputs, outputs in [
        ("a", "x", 64, squeeze),
        ("b", "a", squeeze, 64),
        ("down", "b", 64, narrow),
        ("up", "relu", narrow, 64),
    ]:
        node, weight = linear(name, source, inputs, outputs)
        nodes += node
        weights += weight
    nodes.insert(3, helper.make_node("Relu", ["down"], ["relu"], name="relu"))
    end = (
        helper.make_node("Add", ["b", "up"], ["y"])
        if skip
        else helper.make_node("Identity", ["up"], ["y"])
    )
    io = [("x", TensorProto.FLOAT, [1, 64])], [("y", TensorProto.FLOAT, [1, 64])]
    return model([*nodes, end], *io, weights)


def test_removing_a_skip_puts_the_bypassed_layers_on_the_cut() -> None:
    """The 4-wide down (a layer: its relu is plumbing) was bypassed (F = 64); without the
    skip, F = 4 and down and relu are on the cut: a skip lost around down."""
    old, new = (onnx_flow.audit(_adapter(narrow=4, skip=skip)) for skip in (True, False))
    comparison = compare(old, new)
    assert comparison.no_longer_bypassed == comparison.skips_lost == ("down",)
    assert comparison.newly_on_cut == ("down", "relu")
    assert json.loads(render(comparison, "json"))["reasons"] == [
        "y: new bottleneck 4 of 64 (0.0625) at down (MatMul, 4), relu (Relu, 4)",
        "skip lost around down",
    ]


def test_a_widened_layer_is_no_longer_bypassed_but_lost_no_skip() -> None:
    """down widened to 64 is as wide as the flow: not bypassed, and no cut limits it."""
    old, new = (onnx_flow.audit(_adapter(narrow=n, skip=True)) for n in (4, 64))
    comparison = compare(old, new)
    assert comparison.no_longer_bypassed == ("down",)
    assert comparison.skips_lost == () and not comparison.regressed


def test_a_skip_lost_regresses_even_where_the_ratio_rises(tmp_path: Path) -> None:
    """Old: a squeezes to 4 (F = 4), the 3-wide down is bypassed. New: a squeezes to 8
    and down, 5 wide, has no skip: F = 5, a better ratio, but down and relu limit it."""
    old, new = tmp_path / "old.onnx", tmp_path / "new.onnx"
    onnx.save(_adapter(squeeze=4, narrow=3, skip=True), old)
    onnx.save(_adapter(squeeze=8, narrow=5, skip=False), new)
    result = invoke("diff", old, new)
    assert result.returncode == 1
    assert result.stdout.splitlines()[1] == "REGRESSED: skip lost around down"
    assert "better" in result.stdout


def _low_rank(rank: int) -> onnx.ModelProto:
    """x[1, 64] -> down (64 x 64 weight of the given rank: ``rank`` ones on the
    diagonal) -> up (identity)."""
    down = np.diag([1.0] * rank + [0.0] * (64 - rank)).astype(np.float32)
    weights = [
        numpy_helper.from_array(w, f"{n}.weight")
        for n, w in [("down", down), ("up", np.eye(64, dtype=np.float32))]
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "down.weight"], ["h"], name="down"),
        helper.make_node("MatMul", ["h", "up.weight"], ["y"], name="up"),
    ]
    io = [("x", TensorProto.FLOAT, [1, 64])], [("y", TensorProto.FLOAT, [1, 64])]
    return model(nodes, *io, weights)


def test_a_spectrum_that_fell_under_rank() -> None:
    """Unit singular values: rank and energy rank are both 64, then 16; up stays 64."""
    old, new = (onnx_flow.audit(_low_rank(r), measure="rank", energy=1.0) for r in (64, 16))
    comparison = compare(old, new)
    assert [(f.new.module, f.old.rank, f.new.rank) for f in comparison.spectra_fell] == [
        ("down", 64, 16)
    ]
    assert render(comparison).splitlines()[-1] == (
        "spectra fell: down (rank 64 -> 16, energy rank 64 -> 16)"
    )
    assert compare(new, old).spectra_fell == ()


def test_names_in_the_text_comparison_cannot_drive_the_terminal() -> None:
    """An output and a layer named with terminal escapes, as a hostile file may: the
    text shows the escapes written out, never the control characters."""
    hostile = "\x1b[2J\x1b]8;;evil\x07y"

    def renamed(narrow: int) -> onnx.ModelProto:
        built = squeeze_mlp(narrow=narrow)
        output = built.graph.output[0].name
        for node in built.graph.node:
            node.output[:] = [hostile if out == output else out for out in node.output]
            node.name = f"{hostile}{node.name}"
        built.graph.output[0].name = hostile
        return built

    text = render(compare(onnx_flow.audit(renamed(8)), onnx_flow.audit(renamed(4))), "text")
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2J\\x1b]8;;evil\\x07y" in text
