"""Benchmark a corpus run: the onnx package's backend test models, audited four ways.

The models: every node test case (built in memory by ``onnx.backend.test.case``, saved
here as files) and every ``.onnx`` file under the package's ``backend/test/data``:
about 2,000 small models of every op. Each way writes JSON Lines:

- ``floor``: one Python process auditing them one after another with the library
  (``sandbox.audit_one``), no process per model: the audits' own cost;
- ``serial``: ``onnx-flow audit FOLDER --format jsonl``, each model in a process of
  its own (a sandbox's forked child);
- ``jobs2``: the same with ``--jobs 2``;
- ``dask``: the same with ``--scheduler`` of a local cluster started here, two worker
  processes of one thread each.

For each: wall seconds, models per second, and the overhead per model, the time each
worker spends per model beyond the floor's (``(wall * workers - floor) / models``).
Prints one JSON object.

    python bench/bench_corpus.py [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import onnx

if TYPE_CHECKING:
    from distributed import LocalCluster

FLOOR = (
    "import sys\n"
    "from pathlib import Path\n"
    "from onnx_flow.cli.sandbox import audit_one\n"
    "from onnx_flow.options import Options\n"
    "options = Options.checked()\n"
    "for model in sorted(Path(sys.argv[1]).rglob('*.onnx')):\n"
    "    audit_one(str(model), options)\n"
)


def corpus(folder: Path) -> int:
    """Save the backend test models under ``folder``; return how many there are."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case import node

        cases = node.collect_testcases(None)
    (folder / "node").mkdir(parents=True)
    for case in cases:
        onnx.save(case.model, folder / "node" / f"{case.name}.onnx")
    data = Path(onnx.__file__).parent / "backend" / "test" / "data"
    for file in data.rglob("*.onnx"):
        target = folder / "data" / file.relative_to(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.read_bytes())
    return len(list(folder.rglob("*.onnx")))


def local_cluster() -> LocalCluster:
    """A Dask cluster on this machine, to use as a context: two worker processes of one
    thread each, on loopback, no dashboard (the cluster tests audit on one too)."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )


def timed(command: list[str]) -> float:
    """Wall seconds of the command (its output discarded)."""
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    arguments = parser.parse_args()
    audit = [sys.executable, "-m", "onnx_flow", "audit"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "corpus"
        models = corpus(folder)
        jsonl = [str(folder), "--format", "jsonl"]
        with local_cluster() as cluster:
            ways = {
                "floor": ([sys.executable, "-c", FLOOR, str(folder)], 1),
                "serial": ([*audit, *jsonl], 1),
                "jobs2": ([*audit, *jsonl, "--jobs", "2"], 2),
                "dask": ([*audit, *jsonl, "--scheduler", cluster.scheduler_address], 2),
            }
            walls = {
                name: statistics.median(timed(command) for _ in range(arguments.rounds))
                for name, (command, _) in ways.items()
            }
    floor = walls["floor"]
    results: dict[str, object] = {"models": models}
    for name, (_, workers) in ways.items():
        results[name] = {
            "seconds": round(walls[name], 2),
            "models_per_second": round(models / walls[name], 1),
            "overhead_ms_per_model": round((walls[name] * workers - floor) / models * 1000, 1),
        }
    print(json.dumps({"corpus": results}, indent=2))


if __name__ == "__main__":
    main()
