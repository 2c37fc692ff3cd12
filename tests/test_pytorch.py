"""Auditing torch modules directly, with the layers named by their module paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import onnx_flow
from models.reference import AutoEncoder, Residual
from onnx_flow.testing import assert_no_bottleneck
from tests.conftest import EXPORTERS
from tests.runner import REPO, run

# Each exports a module with torch: seconds each.
pytestmark = pytest.mark.slow

DYNAMO = {"dynamo": True, "torchscript": False}


class Nested(nn.Module):
    """Sequentials inside a ModuleList: 16 -> 16 -> 2 -> 16."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Linear(16, 16), nn.ReLU()),
                nn.Sequential(nn.Linear(16, 2), nn.ReLU()),
            ]
        )
        self.head = nn.Linear(2, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_autoencoder_cut_is_named_by_its_module_path(exporter: str) -> None:
    report = onnx_flow.audit_module(AutoEncoder(), torch.randn(1, 784), dynamo=DYNAMO[exporter])
    assert report.model == "<AutoEncoder>"
    assert (report.total.max_flow, report.total.reference) == (32, 784)
    assert [(t.module, t.width) for t in report.total.cut_near_inputs] == [("enc.2", 32)]
    assert not onnx_flow.audit_module(
        AutoEncoder(), torch.randn(1, 784), dynamo=DYNAMO[exporter], allow=["enc.2"]
    ).bottleneck


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_residual_branch_is_bypassed_by_the_skip(exporter: str) -> None:
    report = onnx_flow.audit_module(Residual(30, 2), torch.randn(1, 30), dynamo=DYNAMO[exporter])
    assert not report.bottleneck
    # down's output (2 wide) and the ReLU after it; 30 flows around them.
    assert next((b.module, b.width, b.bypass) for b in report.bypassed) == ("down", 2, 30)
    assert all((b.width, b.bypass) == (2, 30) for b in report.bypassed)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_nested_containers_give_full_paths(exporter: str) -> None:
    report = onnx_flow.audit_module(Nested(), torch.randn(1, 16), dynamo=DYNAMO[exporter])
    assert (report.total.max_flow, report.total.reference) == (2, 16)
    layers = {t.module for t in (*report.total.cut_near_inputs, *report.total.cut_near_outputs)}
    assert layers == {"blocks.1.0", "blocks.1.1"}


def test_assert_no_bottleneck_names_the_cut() -> None:
    with pytest.raises(AssertionError, match=r"<AutoEncoder> has a bottleneck.*enc\.2"):
        assert_no_bottleneck(AutoEncoder(), torch.randn(1, 784))
    assert assert_no_bottleneck(AutoEncoder(), torch.randn(1, 784), allow=["enc.2"]).outputs


def test_cli_audits_a_module_from_a_factory() -> None:
    factory = "models.reference:AutoEncoder"
    result = run("audit-module", factory, "--input-shape", "1,784")
    assert result.returncode == 1, result.stderr
    assert "enc.2" in result.stdout and result.stderr == ""
    assert (
        run("audit-module", factory, "--input-shape", "1,784", "--allow", "enc.2").returncode == 0
    )


def classifier() -> nn.Module:
    """8 features -> 100 class probabilities: no flow lost (8 of 8), but the 8 -> 100 map
    before the Softmax is a softmax bottleneck (rank 9 of 100)."""
    return nn.Sequential(nn.Linear(8, 100), nn.Softmax(dim=-1))


def test_cli_hands_every_option_to_the_module_audit() -> None:
    """--fail-on reaches the audit, and a picture format gets the data flow it draws."""
    probabilities = ["tests.test_pytorch:classifier", "--input-shape", "1,8"]
    assert run("audit-module", *probabilities).returncode == 0
    assert run("audit-module", *probabilities, "--fail-on", "all").returncode == 1
    factory = ["models.reference:AutoEncoder", "--input-shape", "1,784", "--allow", "enc.2"]
    drawn = run("audit-module", *factory, "--format", "dot")
    assert drawn.returncode == 0 and drawn.stdout.startswith('digraph "<AutoEncoder>"')
    assert "enc.2" in drawn.stdout


def convolution() -> nn.Module:
    """A conv2d: it wants a 4-D input."""
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())


class Chatty(nn.Module):
    """Writes to the process's stdout (file descriptor 1, as C++ code does) while it is
    traced."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        os.write(1, b"graph(%x : Float(1, 8)):\n")
        print("traced")  # and Python's own stdout
        return torch.relu(x)


def language_model() -> nn.Module:
    """Token ids (V=100) -> embedding 16 -> logits over 100."""
    return nn.Sequential(nn.Embedding(100, 16), nn.Linear(16, 100))


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_a_failed_export_says_the_modules_own_error(exporter: str) -> None:
    result = run(
        "audit-module", "tests.test_pytorch:convolution", "--input-shape", "1,64",
        "--exporter", exporter,
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "the export failed: RuntimeError: Expected 3D (unbatched) or 4D (batched)" in line
    assert "\x1b" not in line


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_exporter_chatter_never_reaches_stdout(exporter: str) -> None:
    result = run(
        "audit-module", "tests.test_pytorch:Chatty", "--input-shape", "1,8",
        "--exporter", exporter, "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["max_flow"] == 8


def test_token_ids_are_fed_as_integers() -> None:
    result = run(
        "audit-module", "tests.test_pytorch:language_model", "--input-shape", "1,16",
        "--input-dtype", "int64", "--format", "json",
    )  # fmt: skip
    report = json.loads(result.stdout)
    # The 16 -> 100 head is judged apart: 16 ids embedded at 16 in, 16 x 16 through.
    assert (report["reference"], report["max_flow"]) == (256, 256), result.stderr
    assert [f["kind"] for f in report["findings"]] == ["softmax_bottleneck"]
    assert [(h["d"], h["vocabulary"]) for h in report["heads"]] == [(16, 100)]
    whole = run(
        "audit-module", "tests.test_pytorch:language_model", "--input-shape", "1,16",
        "--input-dtype", "int64", "--format", "json", "--whole-model",
    )  # fmt: skip
    report = json.loads(whole.stdout)
    # 16 ids over a vocabulary of 100, counted one-hot: 1600 in, 16 x 16 through.
    assert (report["reference"], report["max_flow"]) == (1600, 256), whole.stderr


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_floats_fed_to_an_embedding_say_which_flag_feeds_ids(exporter: str) -> None:
    result = run(
        "audit-module", "tests.test_pytorch:language_model", "--input-shape", "1,16",
        "--exporter", exporter,
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "'indices'" in line and line.endswith("give --input-dtype int64")


def test_a_factory_in_the_working_folder_is_found(tmp_path) -> None:
    squeeze = "nn.Sequential(nn.Linear(8, 2), nn.Linear(2, 8))"
    (tmp_path / "mine.py").write_text(
        f"from torch import nn\n\n\ndef build():\n    return {squeeze}\n", encoding="utf-8"
    )
    result = run("audit-module", "mine:build", "--input-shape", "1,8", cwd=tmp_path)
    assert result.returncode == 1 and "max-flow 2 of 8" in result.stdout, result.stderr


def test_audit_module_draws_the_plot_and_writes_the_output(tmp_path) -> None:
    plot, output = tmp_path / "profile.png", tmp_path / "report.json"
    factory = ["models.reference:AutoEncoder", "--input-shape", "1,784"]
    result = run("audit-module", *factory, "--plot", plot, "--output", output, "--format", "json")
    assert result.returncode == 1, result.stderr
    assert (
        plot.read_bytes().startswith(b"\x89PNG")
        and json.loads(output.read_text())["max_flow"] == 32
    )
    assert result.stdout.startswith("<AutoEncoder>: BOTTLENECK  max-flow 32 of 784")


def test_cli_refuses_a_bad_factory() -> None:
    result = run("audit-module", "tests.test_pytorch:Missing", "--input-shape", "1,784")
    assert result.returncode == 2 and "has no attribute 'Missing'" in result.stderr


def test_importing_onnx_flow_never_imports_torch() -> None:
    code = "import sys, onnx_flow, onnx_flow.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.strip() == "False"


def test_without_torch_audit_module_says_how_to_get_it() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import onnx_flow\n"
        "try:\n    onnx_flow.audit_module(object(), ())\n"
        "except onnx_flow.AuditError as error:\n    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert "pip install 'onnx-flow[torch]'" in result.stdout
