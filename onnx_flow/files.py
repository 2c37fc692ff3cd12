"""Files a user names (a model, samples, a report to resume), opened as they are checked.

A path may name a FIFO, whose opening waits for a writer, or a device that never ends:
such a file is refused without waiting, and what was checked is what is then read,
through the same descriptor.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

__all__ = ["NotARegularFile", "open_regular"]


class NotARegularFile(OSError):
    """The path names a FIFO, a device, a socket or a folder."""

    def __init__(self) -> None:
        super().__init__("not a regular file")
        self.strerror = "not a regular file"


def open_regular(path: str | os.PathLike[str], *, update: bool = False) -> BinaryIO:
    """The regular file at ``path``, opened for reading (and writing, with ``update``)
    without waiting for a writer.

    Raises:
        NotARegularFile: it is not a regular file.
        OSError: it cannot be opened.
        ValueError: the path holds a NUL byte.
    """
    mode = os.O_RDWR if update else os.O_RDONLY
    descriptor = os.open(path, mode | os.O_NONBLOCK | os.O_NOCTTY)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise NotARegularFile
    return os.fdopen(descriptor, "rb+" if update else "rb")
