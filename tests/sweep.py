"""Audit every model of the onnx package's own backend test data.

The models: the node test cases (built in memory by ``onnx.backend.test.case``) and
every ``.onnx`` file under the package's ``backend/test/data`` (simple, pytorch-converted,
pytorch-operator, light model zoo). Each is audited in a worker process with a
per-model watchdog (``faulthandler``, which ends the process even inside C++ code);
a worker that dies is replaced and the model it was on counts as ``crashed``.

    python -m tests.sweep            # prints the counts and the slowest models
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import onnx

#: Seconds one model may take before its worker is ended.
TIMEOUT = 60

_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
_NODE = "node:"


@dataclass
class Result:
    model: str
    outcome: str
    """``reported``, ``refused`` (a clear exit-2 message), ``internal`` or ``crashed``."""
    seconds: float
    message: str = ""


@dataclass
class Summary:
    results: list[Result] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        return Counter(r.outcome for r in self.results)

    def slowest(self) -> Result:
        return max(self.results, key=lambda r: r.seconds)

    def line(self) -> str:
        counts = self.counts()
        slowest = self.slowest()
        return (
            f"backend sweep: {len(self.results)} models, {counts['reported']} reported,"
            f" {counts['refused']} refused, {counts['internal']} internal errors,"
            f" {counts['crashed']} crashed or hung; slowest {slowest.seconds:.2f} s"
            f" ({short(slowest.model)})"
        )


def short(model: str) -> str:
    """A model's name relative to the backend data folder."""
    return model.removeprefix(f"{_DATA}/")


def models() -> list[str]:
    """Every model of the sweep: ``node:<case>`` for node cases, else a file path."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case import node

        cases = sorted(case.name for case in node.collect_testcases(None))
    files = sorted(str(p) for p in _DATA.rglob("*.onnx"))
    return [_NODE + name for name in cases] + files


def backend_files(folder: Path, count: int) -> Path:
    """``count`` of the backend data's small model files (simple and pytorch cases, in
    name order), copied into ``folder`` as ``<case>.onnx``: a corpus of small models."""
    files = sorted(p for p in _DATA.rglob("model.onnx") if p.parts[-3] != "light")
    assert len(files) >= count, f"the onnx package holds {len(files)} such models"
    folder.mkdir(parents=True, exist_ok=True)
    for file in files[:count]:
        (folder / f"{file.parent.name}.onnx").write_bytes(file.read_bytes())
    return folder


def sweep(workers: int = 2, timeout: float = TIMEOUT) -> Summary:
    """Audit every model, ``workers`` processes side by side."""
    todo = models()
    shares = [todo[i::workers] for i in range(workers)]
    summary = Summary()
    with ThreadPoolExecutor(workers) as pool:
        for results in pool.map(lambda share: _run_share(share, timeout), shares):
            summary.results.extend(results)
    summary.results.sort(key=lambda r: r.model)
    return summary


def _run_share(share: list[str], timeout: float) -> list[Result]:
    """Audit ``share`` in worker processes, replacing any that dies."""
    results: list[Result] = []
    while len(results) < len(share):
        remaining = share[len(results) :]
        started = time.perf_counter()
        process = subprocess.run(
            [sys.executable, "-m", "tests.sweep", "--worker", str(timeout)],
            input="\n".join(remaining),
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        done = [Result(**json.loads(line)) for line in process.stdout.splitlines()]
        results.extend(done)
        if len(done) < len(remaining):  # the worker died on the next model
            last = sum(r.seconds for r in done)
            reason = process.stderr.strip().splitlines()[:1] or [f"exit {process.returncode}"]
            elapsed = time.perf_counter() - started - last
            results.append(Result(remaining[len(done)], "crashed", elapsed, reason[0]))
    return results


def _worker(timeout: float) -> None:
    """Audit the models named on stdin, one JSON line each on stdout."""
    import faulthandler

    from onnx_flow import audit
    from onnx_flow.errors import AuditError

    names = sys.stdin.read().split("\n")
    node_models = {}
    if any(name.startswith(_NODE) for name in names):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from onnx.backend.test.case import node

            node_models = {c.name: c.model for c in node.collect_testcases(None)}
    for name in names:
        source = node_models[name[len(_NODE) :]] if name.startswith(_NODE) else name
        faulthandler.dump_traceback_later(timeout, exit=True)
        started = time.perf_counter()
        try:
            audit(source)
            outcome, message = "reported", ""
        except AuditError as error:
            outcome, message = "refused", str(error)
        except Exception as error:  # what the sweep is looking for
            outcome, message = "internal", f"{type(error).__name__}: {error}"
        faulthandler.cancel_dump_traceback_later()
        seconds = time.perf_counter() - started
        result = {"model": name, "outcome": outcome, "seconds": seconds, "message": message}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(float(sys.argv[2]))
    else:
        summary = sweep()
        print(summary.line())
        for result in summary.results:
            if result.outcome != "reported":
                print(f"  {result.outcome}: {short(result.model)}: {result.message}")
