"""The command line run as a user runs it: a fresh process, in a folder of the test's."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

#: The repository's root.
REPO = Path(__file__).resolve().parents[1]

#: The model the README's first command audits.
SHIPPED = REPO / "models" / "squeeze.onnx"


def run(
    *args: str | Path, cwd: Path = REPO, memory: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``onnx-flow ARGS`` in a fresh process, in ``cwd`` (the repository by default),
    within 120 s and, if given, ``memory`` bytes of address space."""

    def limited() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "onnx_flow", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        preexec_fn=limited,
    )
