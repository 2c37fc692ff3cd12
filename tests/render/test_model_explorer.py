"""``--format model-explorer``: node data keyed as Model Explorer's ONNX adapter keys the
graph, checked against the adapter itself, then served by Model Explorer and read back
from the page in headless Chromium."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from onnx_flow.render.model_explorer import adapter_ids
from tests.browser import Browser, needs_chromium
from tests.onnx_builders import linear, model
from tests.runner import SHIPPED, invoke, run

adapter = pytest.importorskip("model_explorer_onnx.main")


def _adapter_node_ids(path: Path) -> set[str]:
    """The node ids of the main graph, as the adapter converts the file."""
    graphs = adapter.ONNXAdapter().convert(str(path), {})["graphs"]
    return {node.id for node in graphs[0].nodes}


def _awkwardly_named(path: Path) -> Path:
    """A squeeze whose nodes are unnamed, named twice, or named ``node`` already."""
    down, w1 = linear("down", "x", 64, 4)
    up, w2 = linear("up", "relu_b", 4, 64)
    down[0].name = "node"
    up[0].name = ""
    nodes = [
        *down,
        helper.make_node("Relu", ["down"], ["relu_a"], name=""),
        helper.make_node("Relu", ["relu_a"], ["relu_b"], name="twice"),
        *up,
        helper.make_node("Relu", ["up"], ["y"], name="twice"),
    ]
    io = [("x", TensorProto.FLOAT, [1, 64])]
    onnx.save(model(nodes, io, [("y", TensorProto.FLOAT, [1, 64])], w1 + w2), path)
    return path


def test_adapter_ids_follow_the_adapters_naming() -> None:
    names = ["node", "", "twice", "", "twice", "node_1", ""]
    assert adapter_ids(names) == [
        "node",
        "node_1",
        "twice",
        "node_2",
        "twice_1",
        "node_1_1",
        "node_3",
    ]


@pytest.mark.parametrize("source", ["awkward", "shipped"])
def test_every_key_is_a_node_of_the_adapters_graph(tmp_path: Path, source: str) -> None:
    path = _awkwardly_named(tmp_path / "awkward.onnx") if source == "awkward" else SHIPPED
    result = invoke("audit", path, "--format", "model-explorer")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    ids = _adapter_node_ids(path)
    # Every operator that writes a tensor, and the input and output, is keyed.
    operators = [n for n in onnx.load(path).graph.node]
    assert set(data["results"]) <= ids
    assert len(data["results"]) == len(operators) + 2
    # The cut's layers: down, and in the awkward model the two Relus after it.
    cut = {"node", "node_1", "twice"} if source == "awkward" else {"/2/Gemm"}
    red = {key for key, node in data["results"].items() if node["bgColor"] == "#c0392b"}
    assert red == cut and {data["results"][key]["value"] for key in cut} == {4}
    assert data["name"].startswith("onnx-flow elements width: BOTTLENECK, max-flow 4 of 64")


@pytest.mark.slow  # two models, each audited in a process of its own
def test_several_models_are_refused_in_one_line() -> None:
    result = run("audit", SHIPPED, SHIPPED, "--format", "model-explorer")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("node data of one model at a time")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow  # starts Model Explorer and a browser
@needs_chromium
def test_model_explorer_colours_the_cut_with_its_width(tmp_path: Path) -> None:
    """Model Explorer, started headless with the model and the node data, shows the
    cut's node with its width (4) in red, the others in blue; the screenshot is left in
    the test's folder."""
    data = tmp_path / "flow.json"
    assert invoke("audit", SHIPPED, "--format", "model-explorer", "--output", data).returncode == 1
    port = _free_port()
    server = subprocess.Popen(
        [
            Path(sys.executable).parent / "model-explorer",
            SHIPPED,
            f"--node_data_paths={data}",
            "--extensions=model_explorer_onnx",
            "--no_open_in_browser",
            "--host=127.0.0.1",
            f"--port={port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/check_health", timeout=2) as answer:
                    if answer.read() == b"model_explorer_ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "Model Explorer did not start"
            time.sleep(0.3)
        view = {
            "models": [{"url": str(SHIPPED), "adapterId": "onnx_adapter"}],
            "nodeData": [str(data)],
            "nodeDataTargets": [""],
            # The graph's nodes open, not folded into its one group.
            "uiState": {
                "paneStates": [
                    {
                        "deepestExpandedGroupNodeIds": ["main_graph___group___"],
                        "selectedNodeId": "",
                        "selectedGraphId": "main_graph",
                        "selectedCollectionLabel": "",
                        "widthFraction": 1,
                    }
                ]
            },
        }
        with Browser(1400, 900) as browser:
            browser.open(f"{base}/?data={urllib.parse.quote(json.dumps(view))}")
            rows = browser.wait(
                """(() => { const table = document.querySelector('table.results');
                  if (!table) return null;
                  return [...table.querySelectorAll('tr')].filter(r => r.querySelector('td'))
                    .map(r => { const cells = [...r.querySelectorAll('td')];
                      const value = cells[cells.length - 1];
                      return [cells[1].innerText.trim(), value.innerText.trim(),
                              value.style.backgroundColor]; }); })()""",
                timeout=90,
            )
            time.sleep(1.5)  # the graph canvas paints its colours after the table
            shot = browser.screenshot(tmp_path / "model-explorer.png")
    finally:
        server.terminate()
        server.wait(10)
    assert ["Gemm", "4", "rgb(192, 57, 43)"] in rows
    assert all(bg != "rgb(192, 57, 43)" for op, value, bg in rows if value != "4")
    assert sum(value == "64" for _, value, _ in rows) == 5  # x, three layers, y
    colours = {c for _, c in Image.open(shot).convert("RGB").getcolors(1 << 24)}
    assert (192, 57, 43) in colours


EXPORTERS = Path(__file__).parents[1] / "corpus" / "exporters"


@pytest.mark.parametrize(
    "name", ["keras_mlp", "paddle_mlp", "jax_nnx_residual", "sklearn_mlp_regressor"]
)
def test_keys_are_the_adapters_on_other_exporters_files(name: str) -> None:
    """tf2onnx, paddle2onnx, jax2onnx and skl2onnx name nodes their own ways: every key
    is still a node of the adapter's graph, and the squeezes' cuts are red."""
    path = EXPORTERS / f"{name}.onnx"
    result = invoke("audit", path, "--format", "model-explorer")
    assert result.returncode in (0, 1), result.stderr
    data = json.loads(result.stdout)
    assert data["results"] and set(data["results"]) <= _adapter_node_ids(path)
    red = [key for key, node in data["results"].items() if node["bgColor"] == "#c0392b"]
    assert bool(red) == (result.returncode == 1)
