"""Benchmark ``onnx-flow audit`` against the floor: loading the graph and inferring shapes.

Each case runs the floor process (``onnx.load`` without external data +
``infer_shapes(data_prop=True)``) and the audit process side by side, round after round,
and reports the ratios of the medians, in time and in peak RSS (the audit's with the
child process it infers large graphs in):

- ``synthetic``: deep residual MLPs (narrow branches) of the given node counts;
- ``one_core``: the same at ``--one-core`` nodes, both processes pinned to one core
  (``taskset -c 0``), as on a busy CI runner where the audit's fork gets no free core;
- ``real``: GPT-2 (48 layers, d=256) and Llama (64 layers, d=256) decoders built from
  transformers configs with random weights, exported by both PyTorch exporters.

Weights are in external data everywhere. Prints one JSON object.

    python bench/bench_audit.py --sizes 20000 200000 [--rounds 5] [--one-core 200000]
        [--real gpt2:48 llama:64] [--rank-layers 12] [--data magika:200 ppocr:10]

Rank: the ``rank`` measure on a GPT-2 of the given layers (d=768, V=50257), with
numerical ranks and with ``--energy 0.99`` (each reporting every layer's spectrum): its
time beside the elements audit, and its peak RSS over the size of the largest weight.

Data: the ``data`` measure on a trained model of the corpus over N samples built from
the installed packages, against a floor that loads the model in onnxruntime and runs
the same samples, fetching its outputs only: magika's file-type model on the features
of N package files, PP-OCRv4's text-line recogniser on N 48 x 320 lines of
scikit-learn's digits (``tests/samples.py`` makes both). Timed side by side in
``--data-rounds`` rounds (3); the peak RSS of each from one run of its own.
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WIDTH, NARROW = 64, 4
NODES_PER_BLOCK = 5  # MatMul, Relu, MatMul, Add (bias), Add (skip)

FLOOR = (
    "import sys, onnx, onnx.shape_inference\n"
    "model = onnx.load(sys.argv[1], load_external_data=False)\n"
    "onnx.shape_inference.infer_shapes(model, data_prop=True)\n"
)


# The floor of the data measure: the model as onnxruntime runs it by default, over every
# sample, fetching its outputs only, in batches of 64 (the most the audit runs at once;
# fewer if the model's batch dim is fixed). magika's 300 samples all at once took as long
# as batches of 64 and 3.5 times their memory.
RUNTIME_FLOOR = (
    "import sys, numpy as np, onnxruntime as ort\n"
    "session = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
    "archive = np.load(sys.argv[2])\n"
    "feeds = {i.name: archive[i.name] for i in session.get_inputs()}\n"
    "count = len(next(iter(feeds.values())))\n"
    "fixed = session.get_inputs()[0].shape[0]\n"
    "batch = min(64, fixed) if isinstance(fixed, int) and fixed > 0 else 64\n"
    "for start in range(0, count, batch):\n"
    "    session.run(None, {n: v[start : start + batch] for n, v in feeds.items()})\n"
)

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus" / "wheels"


def magika_samples(count: int, path: Path) -> Path:
    """Write magika's inputs for ``count`` files of site-packages (``tests/samples.py``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.samples import magika_samples as inputs

    np.savez(path, bytes=inputs(count))
    return path


def ppocr_samples(count: int, path: Path) -> Path:
    """Write ``count`` text lines of scikit-learn's digits as PP-OCRv4 rec's input ``x``
    (N, 3, 48, 320), normalised as PP-OCR does (``tests/samples.py``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.samples import digit_lines

    np.savez(path, x=digit_lines(count))
    return path


class DataCase(NamedTuple):
    """A corpus model the data measure is timed on."""

    model: str
    """Its file under ``tests/corpus/wheels``."""
    samples: Callable[[int, Path], Path]
    """Writes ``count`` samples to ``path`` as ``.npz``."""
    flags: list[str]
    """The audit's flags beside ``--measure data --inputs``."""


DATA_CASES = {
    "magika": DataCase("magika_standard_v3_3.onnx", magika_samples, []),
    "ppocr": DataCase(
        "ch_PP-OCRv4_rec_infer.onnx", ppocr_samples, ["--input-shape", "x=1,3,48,320"]
    ),
}


def residual_mlp(nodes: int, path: Path) -> Path:
    """Write a residual MLP of about ``nodes`` nodes, its weights as external data."""
    blocks = max(1, nodes // NODES_PER_BLOCK)
    graph_nodes, weights = [], []
    rng = np.random.default_rng(0)
    h = "x"
    for b in range(blocks):
        down, up, bias = f"b{b}.down", f"b{b}.up", f"b{b}.bias"
        weights += [
            numpy_helper.from_array(rng.standard_normal((WIDTH, NARROW), np.float32), down),
            numpy_helper.from_array(rng.standard_normal((NARROW, WIDTH), np.float32), up),
            numpy_helper.from_array(rng.standard_normal(WIDTH, np.float32), bias),
        ]
        graph_nodes += [
            helper.make_node("MatMul", [h, down], [f"b{b}.d"], name=f"b{b}/down"),
            helper.make_node("Relu", [f"b{b}.d"], [f"b{b}.r"], name=f"b{b}/relu"),
            helper.make_node("MatMul", [f"b{b}.r", up], [f"b{b}.u"], name=f"b{b}/up"),
            helper.make_node("Add", [f"b{b}.u", bias], [f"b{b}.ub"], name=f"b{b}/bias"),
            helper.make_node("Add", [h, f"b{b}.ub"], [f"b{b}.h"], name=f"b{b}/skip"),
        ]
        h = f"b{b}.h"
    graph = helper.make_graph(
        graph_nodes,
        "residual_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info(h, TensorProto.FLOAT, ["batch", WIDTH])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(
        model, path, save_as_external_data=True, location=path.name + ".data", size_threshold=0
    )
    return path


def gpt2_decoder(layers: int, path: Path) -> Path:
    """Export GPT-2 (d=768, V=50257) of ``layers`` layers (dynamo exporter, external
    data): the rank measure's case."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from models.reference import export_module, gpt2

    torch.manual_seed(0)
    module = gpt2(layers=layers).eval()
    example = (torch.randint(0, 50257, (2, 16)),)
    return export_module(module, example, {"x": {0: "batch", 1: "sequence"}}, path, dynamo=True)


def decoder(name: str, layers: int, path: Path, *, dynamo: bool, width: int = 256) -> Path:
    """Export a ``gpt2`` or ``llama`` decoder of ``layers`` layers, d=``width``, from a
    transformers config with random weights; weights saved as external data."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from models.reference import LanguageModelLogits, export_module

    torch.manual_seed(0)
    if name == "gpt2":
        config = GPT2Config(n_layer=layers, n_embd=width, n_head=8, vocab_size=50257)
        model = GPT2LMHeadModel(config)
    else:
        config = LlamaConfig(
            vocab_size=32000,
            hidden_size=width,
            intermediate_size=2 * width,
            num_hidden_layers=layers,
            num_attention_heads=8,
            num_key_value_heads=4,
        )
        model = LlamaForCausalLM(config)
    config._attn_implementation = "eager"
    module = LanguageModelLogits(model, use_cache=False).eval()
    example = (torch.randint(0, config.vocab_size, (2, 16)),)
    exported = export_module(
        module, example, {"x": {0: "batch", 1: "sequence"}}, path, dynamo=dynamo
    )
    # The legacy exporter writes weights inline: move them out, as the dynamo one does.
    onnx.save(
        onnx.load(exported),
        path,
        save_as_external_data=True,
        location=path.name + ".data",
        size_threshold=1024,
    )
    return path


# A forked child's peak RSS starts at its parent's (Linux keeps the high-water mark
# across exec), and this process holds whole models: so each measured command is
# started by a small launcher process, which reports the command's time and peak RSS.
# The audit infers large graphs in a child process of its own: the peak is that of the
# whole process tree, sampled every 10 ms by a thread beside the command (shared pages
# count in each process, so it errs high), or the command's own peak if higher. The
# sampling takes CPU the audit's two processes would use (measured: 4.07 s -> 4.6 s at
# 200,000 nodes, the floor unchanged), so timed runs are not sampled: they report the
# command's own peak only.
LAUNCHER = (
    "import json, os, subprocess, sys, threading, time\n"
    "def tree(pid):\n"
    "    try:\n"
    "        with open(f'/proc/{pid}/statm') as statm:\n"
    "            rss = int(statm.read().split()[1]) * os.sysconf('SC_PAGESIZE') // 1024\n"
    "        with open(f'/proc/{pid}/task/{pid}/children') as children:\n"
    "            return rss + sum(tree(int(c)) for c in children.read().split())\n"
    "    except OSError:\n"
    "        return 0\n"
    "peak = [0]\n"
    "def sample(pid):\n"
    "    while True:\n"
    "        peak[0] = max(peak[0], tree(pid))\n"
    "        time.sleep(0.01)\n"
    "start = time.perf_counter()\n"
    "child = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "if sys.argv[1] == 'sample':\n"
    "    threading.Thread(target=sample, args=(child.pid,), daemon=True).start()\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "seconds = time.perf_counter() - start\n"
    "code = os.waitstatus_to_exitcode(status)\n"
    "stderr = child.stderr.read().decode()\n"
    "cpu = usage.ru_utime + usage.ru_stime\n"
    "print(json.dumps([seconds, max(usage.ru_maxrss, peak[0]), cpu, code, stderr]))\n"
)


class Run(NamedTuple):
    """One measured process."""

    seconds: float
    """Wall time."""
    peak_kib: int
    """Peak RSS: of its process tree when sampled, else of the process itself."""
    cpu_seconds: float
    """User + system time, its waited-for children included (the audit's inference
    child runs beside it: its CPU time exceeds its wall time)."""


def measure(command: list[str], *, sample: bool = False) -> Run:
    """Measure one process that must exit 0 or 1; ``sample``: its tree's peak RSS."""
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCHER, "sample" if sample else "time", *command],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, peak, cpu, code, stderr = json.loads(launched.stdout)
    if code not in (0, 1):
        raise SystemExit(f"{' '.join(command)} exited {code}: {stderr.strip()}")
    return Run(seconds, peak, cpu)


def compare(model: Path, rounds: int, flags: list[str], pinned: bool = False) -> dict[str, float]:
    """Median time, CPU time and peak RSS of the floor and the audit, run side by side:
    each round times both, then samples the peak RSS of both in runs of their own;
    ``pinned``: both on one core."""
    prefix = ["taskset", "-c", "0"] if pinned else []
    floor_cmd = [*prefix, sys.executable, "-c", FLOOR, str(model)]
    audit_cmd = [*prefix, sys.executable, "-m", "onnx_flow", "audit", str(model), *flags]
    floors, audits, floor_peaks, audit_peaks = [], [], [], []
    for _ in range(rounds):
        floors.append(measure(floor_cmd))
        audits.append(measure(audit_cmd))
        floor_peaks.append(measure(floor_cmd, sample=True).peak_kib)
        audit_peaks.append(measure(audit_cmd, sample=True).peak_kib)
    floor_time = statistics.median(run.seconds for run in floors)
    audit_time = statistics.median(run.seconds for run in audits)
    floor_rss = statistics.median(floor_peaks)
    audit_rss = statistics.median(audit_peaks)
    return {
        "floor_seconds": round(floor_time, 3),
        "audit_seconds": round(audit_time, 3),
        "time_ratio": round(audit_time / floor_time, 2),
        "floor_cpu_seconds": round(statistics.median(run.cpu_seconds for run in floors), 3),
        "audit_cpu_seconds": round(statistics.median(run.cpu_seconds for run in audits), 3),
        "floor_peak_rss_mib": round(floor_rss / 1024, 1),
        "audit_peak_rss_mib": round(audit_rss / 1024, 1),
        "memory_ratio": round(audit_rss / floor_rss, 2),
    }


def rank_cost(model: Path, rounds: int) -> dict[str, object]:
    """The rank measure on a model, with numerical ranks and with ``--energy 0.99``
    (both report every layer's spectrum): time beside the elements audit, and peak RSS
    as a ratio to the largest single weight (weights are read one at a time)."""
    graph = onnx.load(model, load_external_data=False).graph
    largest = max(
        math.prod(t.dims) * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        for t in graph.initializer
    )
    base = [sys.executable, "-m", "onnx_flow", "audit", str(model), "--dim", "sequence=16"]
    commands = {"rank": [*base, "--measure", "rank"]}
    commands["energy"] = [*commands["rank"], "--energy", "0.99"]
    results: dict[str, object] = {
        "elements_seconds": round(
            statistics.median(measure(base).seconds for _ in range(rounds)), 3
        ),
        "largest_weight_mib": round(largest / 2**20, 1),
    }
    for name, command in commands.items():
        timed = [measure(command) for _ in range(rounds)]
        peak = statistics.median(measure(command, sample=True).peak_kib for _ in range(rounds))
        results[f"{name}_seconds"] = round(statistics.median(run.seconds for run in timed), 3)
        results[f"{name}_peak_rss_mib"] = round(peak / 1024, 1)
        results[f"{name}_peak_over_largest_weight"] = round(peak * 1024 / largest, 2)
    return results


def data_cost(case: str, count: int, folder: Path, rounds: int) -> dict[str, object]:
    """The data measure on a corpus model over ``count`` samples against the floor:
    onnxruntime running the model over the same samples, timed side by side round after
    round; then one run of each whose peak RSS (of the audit's process tree) is sampled
    (the runs are long, their peaks steady). ``case_seconds``: all of it, samples built
    included (CI's budget)."""
    start = time.perf_counter()
    chosen = DATA_CASES[case]
    model = CORPUS / chosen.model
    samples = chosen.samples(count, folder / f"{case}-{count}.npz")
    floor_cmd = [sys.executable, "-c", RUNTIME_FLOOR, str(model), str(samples)]
    audit_cmd = [sys.executable, "-m", "onnx_flow", "audit", str(model), *chosen.flags]
    audit_cmd += ["--measure", "data", "--inputs", str(samples)]
    floors, audits = [], []
    for _ in range(rounds):
        floors.append(measure(floor_cmd).seconds)
        audits.append(measure(audit_cmd).seconds)
    floor_time, audit_time = statistics.median(floors), statistics.median(audits)
    floor_rss = measure(floor_cmd, sample=True).peak_kib
    audit_rss = measure(audit_cmd, sample=True).peak_kib
    return {
        "samples": count,
        "floor_seconds": round(floor_time, 3),
        "audit_seconds": round(audit_time, 3),
        "time_ratio": round(audit_time / floor_time, 2),
        "floor_peak_rss_mib": round(floor_rss / 1024, 1),
        "audit_peak_rss_mib": round(audit_rss / 1024, 1),
        "memory_ratio": round(audit_rss / floor_rss, 2),
        "case_seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 200000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--one-core", type=int, default=200000, help="nodes of the pinned case (0: skip)"
    )
    parser.add_argument(
        "--real",
        nargs="*",
        default=["gpt2:48", "llama:64"],
        metavar="NAME:LAYERS",
        help="real decoders, each exported by both exporters (none: skip)",
    )
    parser.add_argument(
        "--rank-layers",
        type=int,
        default=0,
        help="also time the rank measure on a GPT-2 of this many layers (0: skip)",
    )
    parser.add_argument(
        "--data",
        nargs="*",
        default=[],
        metavar="MODEL:SAMPLES",
        help=f"time the data measure on {' or '.join(DATA_CASES)} over this many samples",
    )
    parser.add_argument(
        "--data-rounds", type=int, default=3, help="rounds of each data case (they are long)"
    )
    arguments = parser.parse_args()
    # Time the audit from bytecode, as a regular `pip install` leaves it: an editable
    # install under PYTHONDONTWRITEBYTECODE would compile the package on every run.
    import onnx_flow

    compileall.compile_dir(Path(onnx_flow.__file__).parent, quiet=1)
    results: dict[str, object] = {
        "rounds": arguments.rounds,
        "synthetic": {},
        "one_core": None,
        "real": {},
        "rank": None,
        "data": {},
    }
    with tempfile.TemporaryDirectory() as folder:
        sizes = [*arguments.sizes, *([arguments.one_core] if arguments.one_core else [])]
        built = {size: residual_mlp(size, Path(folder) / f"residual-{size}.onnx") for size in sizes}
        for size in arguments.sizes:
            model = built[size]
            nodes = len(onnx.load(model, load_external_data=False).graph.node)
            results["synthetic"][str(size)] = {
                "nodes": nodes,
                **compare(model, arguments.rounds, []),
            }
        if arguments.one_core:
            size = arguments.one_core
            results["one_core"] = {
                "nodes": size,
                **compare(built[size], arguments.rounds, [], True),
            }
        for case in arguments.real:
            name, layers = case.split(":")
            for exporter in ("torchscript", "dynamo"):
                path = Path(folder) / f"{name}-{layers}-{exporter}.onnx"
                model = decoder(name, int(layers), path, dynamo=exporter == "dynamo")
                nodes = len(onnx.load(model, load_external_data=False).graph.node)
                results["real"][f"{name}-{layers}-layers-{exporter}"] = {
                    "nodes": nodes,
                    **compare(model, arguments.rounds, ["--dim", "sequence=16"]),
                }
        if arguments.rank_layers:
            model = gpt2_decoder(arguments.rank_layers, Path(folder) / "gpt2-rank.onnx")
            results["rank"] = {
                "model": f"gpt2-{arguments.rank_layers}-layers",
                **rank_cost(model, arguments.rounds),
            }
        for case in arguments.data:
            name, count = case.split(":")
            results["data"][f"{name}-{count}-samples"] = data_cost(
                name, int(count), Path(folder), arguments.data_rounds
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
