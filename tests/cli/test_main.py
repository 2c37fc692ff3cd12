"""The command line: exit codes, one-line refusals, the JSON contract, determinism.

Most call :func:`~onnx_flow.cli.main.main` here (:func:`~tests.runner.invoke`); README's
first command, several models (each audited in a process of its own) and determinism
across runs run ``onnx-flow`` in a process of its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from tests.onnx_builders import cycle, model, squeeze_mlp
from tests.runner import SHIPPED, invoke, run

REPORT_KEYS = {
    "model",
    "measure",
    "dims",
    "schema_version",
    "max_flow",
    "reference",
    "ratio",
    "bottleneck",
    "outputs",
    "cut_near_inputs",
    "cut_near_outputs",
    "bypassed",
    "unknown",
}
OUTPUT_KEYS = {
    "name",
    "max_flow",
    "reference",
    "ratio",
    "bottleneck",
    "cut_near_inputs",
    "cut_near_outputs",
}
CUT_KEYS = {"tensor", "width", "shape", "node", "op", "module"}
BYPASSED_KEYS = {"tensor", "width", "node", "module", "bypass", "op", "kind"}


@pytest.mark.slow  # a process of its own: seconds
def test_shipped_model_is_a_bottleneck_exit_1() -> None:
    result = run("audit", SHIPPED)
    assert result.returncode == 1, result.stderr
    assert "BOTTLENECK" in result.stdout and "max-flow 4 of 64" in result.stdout


def test_clean_model_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "relu.onnx"
    onnx.save(
        model([helper.make_node("Relu", ["x"], ["y"])], [("x", 1, [1, 8])], [("y", 1, [1, 8])]),
        path,
    )
    result = invoke("audit", path)
    assert result.returncode == 0, result.stderr
    assert "no bottleneck" in result.stdout


def test_json_report_has_the_contract_keys(tmp_path: Path) -> None:
    path = tmp_path / "residual.onnx"
    down = helper.make_node("MatMul", ["x", "wd"], ["d"], name="down")
    up = helper.make_node("MatMul", ["d", "wu"], ["u"], name="up")
    add = helper.make_node("Add", ["x", "u"], ["y"], name="add")
    weights = [
        numpy_helper.from_array(np.zeros((16, 2), np.float32), "wd"),
        numpy_helper.from_array(np.zeros((2, 16), np.float32), "wu"),
    ]
    onnx.save(model([down, up, add], [("x", 1, ["n", 16])], [("y", 1, ["n", 16])], weights), path)
    result = invoke("audit", path, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert REPORT_KEYS <= report.keys()
    assert report["schema_version"] == 1 and report["dims"] == {"n": 1}
    (output,) = report["outputs"]
    assert OUTPUT_KEYS <= output.keys()
    assert all(CUT_KEYS <= cut.keys() for cut in output["cut_near_inputs"])
    (bypassed,) = [b for b in report["bypassed"] if b["tensor"] == "d"]
    assert BYPASSED_KEYS <= bypassed.keys()
    assert (bypassed["width"], bypassed["bypass"], bypassed["node"]) == (2, 16, "down")
    # A MatMul by a weight: a layer, computed from x (16 wide) alone.
    assert (bypassed["kind"], bypassed["reads"]) == ("layer", 16)


@pytest.mark.slow  # a process of its own: seconds
def test_several_models_give_a_list_in_order(tmp_path: Path) -> None:
    clean = tmp_path / "relu.onnx"
    onnx.save(
        model([helper.make_node("Relu", ["x"], ["y"])], [("x", 1, [1, 8])], [("y", 1, [1, 8])]),
        clean,
    )
    result = run("audit", clean, SHIPPED, "--format", "json")
    assert result.returncode == 1
    reports = json.loads(result.stdout)
    assert [r["model"] for r in reports] == [str(clean), str(SHIPPED)]
    assert [r["bottleneck"] for r in reports] == [False, True]


def test_bits_measure_and_dims_reach_the_report() -> None:
    result = invoke("audit", SHIPPED, "--format", "json", "--measure", "bits", "--dim", "batch=4")
    report = json.loads(result.stdout)
    assert report["measure"] == "bits" and report["dims"] == {"batch": 4}
    assert (report["max_flow"], report["reference"]) == (4 * 4 * 32, 4 * 64 * 32)


def test_threshold_below_the_ratio_passes() -> None:
    assert invoke("audit", SHIPPED, "--threshold", "0.05").returncode == 0
    assert invoke("audit", SHIPPED, "--threshold", "0.07").returncode == 1


def test_json_is_byte_identical_across_runs(exported) -> None:
    path = exported("unet", "dynamo")
    first, second = (run("audit", path, "--format", "json") for _ in range(2))
    assert first.returncode == 0 and first.stdout == second.stdout


def _no_inputs(path: Path) -> None:
    const = helper.make_node(
        "Constant", [], ["y"], value=numpy_helper.from_array(np.ones(3, np.float32))
    )
    onnx.save(model([const], [], [("y", 1, [3])]), path)


def _truncated(path: Path) -> None:
    path.write_bytes(SHIPPED.read_bytes()[: SHIPPED.stat().st_size // 2])


BAD_INPUTS = {
    "missing file": (lambda p: None, [], "no such file"),
    "empty folder": (lambda p: p.mkdir(), [], "no .onnx file in this folder"),
    "truncated file": (_truncated, [], "not an ONNX model"),
    "text file": (lambda p: p.write_text("hello, world\n" * 20), [], "not an ONNX model"),
    "empty file": (lambda p: p.write_bytes(b""), [], "not an ONNX model"),
    "no data inputs": (_no_inputs, [], "no data inputs"),
    "malformed --dim": (lambda p: onnx.save(squeeze_mlp(), p), ["--dim", "batch"], "NAME=N"),
    "zero --dim": (lambda p: onnx.save(squeeze_mlp(), p), ["--dim", "batch=0"], "positive integer"),
    "--threshold out of range": (
        lambda p: onnx.save(squeeze_mlp(), p),
        ["--threshold", "2"],
        "(0, 1]",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    make, flags, message = BAD_INPUTS[case]
    path = tmp_path / "model.onnx"
    make(path)
    result = invoke("audit", path, *flags)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("onnx-flow: error: ") and message in lines[0]


def test_cyclic_graph_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cycle.onnx"
    onnx.save(cycle(), path)
    result = invoke("audit", path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "cycle" in result.stderr


def test_weights_are_never_read(tmp_path: Path) -> None:
    path = tmp_path / "external.onnx"
    onnx.save(
        squeeze_mlp(), path, save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\xff" * weights.stat().st_size)  # every float a NaN
    result = invoke("audit", path, "--format", "json")
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["max_flow"] == 4


GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize(
    ("name", "flags"), [("squeeze.txt", []), ("squeeze.json", ["--format", "json"])]
)
def test_output_matches_golden_file(name: str, flags: list[str]) -> None:
    """Set ONNX_FLOW_UPDATE_GOLDEN=1 to rewrite the golden files, then review the diff."""
    result = invoke("audit", "models/squeeze.onnx", *flags)
    golden = GOLDEN / name
    if os.environ.get("ONNX_FLOW_UPDATE_GOLDEN") == "1":
        golden.write_text(result.stdout)
    assert result.stdout == golden.read_text()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--format", "nonsense"], "invalid choice: 'nonsense'"),
        (["--threshold", "half"], "invalid float value: 'half'"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_a_usage_error_is_one_line(flags: list[str], named: str) -> None:
    result = invoke("audit", SHIPPED, *flags)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("onnx-flow") and named in line and "--help)" in line


def test_a_capped_width_says_so() -> None:
    printed = invoke("audit", SHIPPED, "--measure", "rank").stdout
    assert "width or cap" in printed and invoke("audit", SHIPPED).stdout.count("width or cap") == 0


def test_names_cannot_forge_lines_or_drive_the_terminal(tmp_path: Path) -> None:
    """A node name with a newline, terminal escapes and rich markup is printed as
    escapes and brackets, on its own row."""
    built = onnx.load(SHIPPED)
    forged = "evil\nno bottleneck  max-flow 64 of 64 (ratio 1)\x1b[2K[red]x[/]"
    for node in built.graph.node:
        if node.name == "/2/Gemm":
            node.name = forged
    path = tmp_path / "forged.onnx"
    onnx.save(built, path)
    for output_format in ("text", "markdown"):
        result = invoke("audit", path, "--format", output_format)
        assert result.returncode == 1, result.stderr
        assert "\x1b" not in result.stdout and "\nno bottleneck" not in result.stdout
        assert "evil\\nno bottleneck" in result.stdout or "evil no bottleneck" in result.stdout
        assert "\\x1b[2K[red]x[" in result.stdout  # the layer: the name less its last part
