"""The one message format between the tool's processes: a pickle after its length.

A message is pickled at the highest protocol and announced by its length in
:data:`LENGTH` bytes, little-endian. Two carriers use it:

- a stream (a server's requests and replies, :func:`send` and :func:`receive`): the
  length, then the pickle, on the same stream;
- a :class:`Spool` (a child's results): the pickles are written to a memory file and
  their lengths to a pipe, so the child never waits for its parent to read, and a
  child that dies leaves the pipe at its end.
"""

from __future__ import annotations

import os
import pickle
from typing import IO, Any

__all__ = ["LENGTH", "Ended", "Spool", "receive", "send"]

#: Bytes that announce a message's length (on a pipe, one write: it arrives whole).
LENGTH = 8


class Ended(Exception):
    """The sender ended before it announced a message."""


def send(stream: IO[bytes], message: object) -> None:
    """Write ``message`` to ``stream`` after its length, and flush it."""
    data = _pickled(message)
    stream.write(len(data).to_bytes(LENGTH, "little") + data)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    """The next message on ``stream``, or ``None`` at its end (the sender ended)."""
    length = _length(stream.read(LENGTH))
    if length is None:
        return None
    data = stream.read(length)
    if len(data) < length:
        return None
    return pickle.loads(data)


class Spool:
    """Messages from a child to its parent: pickles in a memory file, lengths on a pipe.

    The parent creates it before the fork; the child then only calls :meth:`send`, the
    parent :meth:`receive`, and each closes its own end (:attr:`writing` in the parent
    after the fork, :attr:`pipe` in the child).
    """

    def __init__(self) -> None:
        """Create the memory file and the pipe.

        Raises:
            OSError: no descriptor to spare (none is left open then).
        """
        self._data = os.memfd_create("onnx-flow-messages")
        try:
            self.pipe, self.writing = os.pipe()
        except OSError:
            os.close(self._data)
            raise
        self._read = 0  # bytes of the memory file received so far

    def send(self, message: object) -> None:
        """In the child: write ``message`` to the file, then announce it on the pipe."""
        payload = memoryview(_pickled(message))
        written = 0
        while written < len(payload):
            written += os.write(self._data, payload[written:])
        os.write(self.writing, len(payload).to_bytes(LENGTH, "little"))

    def receive(self) -> Any:
        """In the parent: the next message, waiting for its announcement.

        Raises:
            Ended: the child ended without announcing one.
        """
        length = _length(os.read(self.pipe, LENGTH))
        if length is None:
            raise Ended
        message = pickle.loads(os.pread(self._data, length, self._read))
        self._read += length
        return message

    def close(self) -> None:
        """Close this side's descriptors (the writing end only if still open)."""
        for descriptor in (self.pipe, self.writing, self._data):
            if descriptor >= 0:
                os.close(descriptor)
        self.pipe = self.writing = self._data = -1

    def close_writing(self) -> None:
        """In the parent after the fork: close the pipe's writing end (the child's)."""
        os.close(self.writing)
        self.writing = -1


def _pickled(message: object) -> bytes:
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def _length(announced: bytes) -> int | None:
    """The length announced, or ``None`` if the sender ended first."""
    if len(announced) < LENGTH:
        return None
    return int.from_bytes(announced, "little")
