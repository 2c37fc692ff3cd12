"""The command line run as a user runs it: a fresh process, in a folder of the test's
(:func:`run`, :func:`started`); or its :func:`~onnx_flow.cli.main.main` called here, as
quick, for what happens within the command (:func:`invoke`)."""

from __future__ import annotations

import contextlib
import io
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

#: The repository's root.
REPO = Path(__file__).resolve().parents[1]

#: The model the README's first command audits.
SHIPPED = REPO / "models" / "squeeze.onnx"

#: ``onnx-flow`` in a fresh Python, and an environment in which it finds this checkout.
COMMAND = [sys.executable, "-m", "onnx_flow"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def run(
    *args: str | Path,
    cwd: Path = REPO,
    memory: int | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``onnx-flow ARGS`` run to its end, within 120 s, as :func:`started` starts it."""
    with started(*args, cwd=cwd, memory=memory, env=env) as process:
        stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def invoke(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``onnx-flow ARGS`` run by :func:`onnx_flow.cli.main.main` in this process, in
    ``cwd`` (the repository by default), its standard output and error captured: what
    :func:`run` gives, less a second of Python starting and importing the audit.

    What only a process of its own shows stays with :func:`run`: the ``onnx-flow``
    executable's exit (:func:`~onnx_flow.cli.main.entry`), signals, limits, closed streams.
    """
    from onnx_flow.cli.main import main

    arguments = list(map(str, args))
    stdout, stderr = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(arguments)
            except SystemExit as exit:  # argparse: usage errors, --help, --version
                code = int(exit.code or 0)
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(
        ["onnx-flow", *arguments], code, stdout.getvalue(), stderr.getvalue()
    )


@contextlib.contextmanager
def started(
    *args: str | Path,
    stdout: int | None = subprocess.PIPE,
    stderr: int | None = subprocess.PIPE,
    cwd: Path = REPO,
    memory: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[str]]:
    """``onnx-flow ARGS`` started in a fresh process, to watch while it runs: in ``cwd``
    (the repository by default), within ``memory`` bytes of address space if given; its
    streams are text, piped unless given, its environment :data:`ENV` and ``env``.

    It takes Ctrl-C as from a shell, even under a runner started in the background
    (which ignores SIGINT, and would pass that on). Leaving the block waits for it,
    as ``Popen`` does, unless the block raised: a test that failed waiting for it
    kills it rather than hang.
    """

    def prepared() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    with subprocess.Popen(
        [*COMMAND, *map(str, args)],
        stdout=stdout,
        stderr=stderr,
        text=True,
        cwd=cwd,
        env={**ENV, **(env or {})},
        preexec_fn=prepared,
    ) as process:
        try:
            yield process
        except BaseException:
            process.kill()  # else the block's end would wait for it
            raise


def deep_model(nodes: int, path: Path) -> Path:
    """A residual MLP of about ``nodes`` nodes (the bench's), saved at ``path``: a model
    whose audit takes a while (2,000 nodes: about a tenth of a second)."""
    sys.path.insert(0, str(REPO / "bench"))
    from bench_audit import residual_mlp

    return residual_mlp(nodes, path)
