"""Progress of long measurements (the rank and data measures), for whoever listens.

The command line listens while it audits one model on a terminal and draws a bar on
stderr; the library itself never prints. A measurement calls :func:`step`; with no
listener (the Python API, worker processes) that costs nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

__all__ = ["listening", "step"]

_listener: ContextVar[Callable[[str, int, int], None] | None] = ContextVar(
    "onnx_flow_progress", default=None
)


@contextlib.contextmanager
def listening(listener: Callable[[str, int, int], None]) -> Iterator[None]:
    """Call ``listener(what, done, total)`` as measurements proceed, inside the block."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def step(what: str, done: int, total: int) -> None:
    """Say that ``done`` of ``total`` units of ``what`` are measured."""
    listener = _listener.get()
    if listener is not None:
        listener(what, done, total)
