# mypy: disallow-untyped-calls=False
# (distributed is typed only in part)
"""``--scheduler tcp://HOST:PORT``: the per-model audits as tasks on a Dask cluster.

Each task carries a model's path, the options and the working folder of the command
(never the file's bytes: a model's external data lives beside it), so the workers must
see the models at the same paths, as on a shared file system. On the worker, the task
hands the model to its thread's sandbox (:func:`~onnx_flow.cli.sandbox.sandbox`): the
same limits as on one machine, and a model that hangs or crashes costs its own entry,
never the worker. A worker that dies (killed, its machine lost) has its tasks run again by
the scheduler on another; a model whose workers all die gets its error entry.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from onnx_flow.errors import AuditError, first_line
from onnx_flow.options import Options
from onnx_flow.report import Failure, Result

if TYPE_CHECKING:
    from onnx_flow.processes.server import Server

__all__ = ["audit_on"]


def audit_on(
    address: str, models: Sequence[str], options: Mapping[str, Options]
) -> Iterator[tuple[str, Result]]:
    """Each model with its result, audited with its ``options`` on the cluster whose
    scheduler is at ``address``, as they finish.

    Raises:
        AuditError: Dask distributed is not installed, or the scheduler cannot be reached
            (within Dask's ``distributed.comm.timeouts.connect``, 30 s by default).
    """
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise AuditError(
            "--scheduler needs Dask distributed: pip install 'onnx-flow[dask]'"
        ) from None
    try:
        # Waits as long as Dask's distributed.comm.timeouts.connect says (30 s).
        client = Client(address, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise AuditError(f"--scheduler {address}: {first_line(error)}") from None
    run = uuid.uuid4().hex  # task keys of this run only: a model audited twice is two tasks
    folder = os.getcwd()
    try:
        futures = {
            client.submit(
                _task, model, options[model], folder, key=f"onnx-flow-{run}-{index}", pure=False
            ): model
            for index, model in enumerate(dict.fromkeys(models))
        }
        for future in as_completed(futures, loop=client.loop):
            model = futures[future]
            try:
                yield model, future.result()
            except Exception as error:  # KilledWorker, a lost connection: its entry only
                reason = first_line(f"{type(error).__name__}: {error}")
                yield model, Failure(model, f"{model}: on the cluster: {reason}")
    finally:
        client.close()


_local = threading.local()


def _task(model: str, options: Options, folder: str) -> Result:
    """On a worker: the model audited by its thread's sandbox."""
    from onnx_flow.cli import sandbox

    server: Server | None = getattr(_local, "sandbox", None)
    if server is None:
        server = _local.sandbox = sandbox.sandbox()
    return sandbox.audit(server, model, options, folder)
