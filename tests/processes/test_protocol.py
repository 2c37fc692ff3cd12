"""The one message format: a pickle after its length in 8 little-endian bytes."""

from __future__ import annotations

import io
import pickle
import struct

import pytest

from onnx_flow.processes import protocol

MESSAGE = ("result", {"x": (1, (2, 3))})


def test_a_message_on_a_stream_is_its_length_then_its_pickle() -> None:
    stream = io.BytesIO()
    protocol.send(stream, MESSAGE)
    data = pickle.dumps(MESSAGE, protocol=pickle.HIGHEST_PROTOCOL)
    assert stream.getvalue() == struct.pack("<Q", len(data)) + data


def test_messages_come_back_in_order_then_none_at_the_end() -> None:
    stream = io.BytesIO()
    for message in (MESSAGE, None, 7):
        protocol.send(stream, message)
    stream.seek(0)
    assert [protocol.receive(stream) for _ in range(4)] == [MESSAGE, None, 7, None]


@pytest.mark.parametrize("cut", [3, 8, 12])
def test_a_message_cut_short_is_the_end(cut: int) -> None:
    """A sender that died mid-message (in the length or in the pickle)."""
    stream = io.BytesIO()
    protocol.send(stream, MESSAGE)
    assert protocol.receive(io.BytesIO(stream.getvalue()[:cut])) is None


def test_a_spool_gives_its_messages_in_order_then_ended() -> None:
    spool = protocol.Spool()
    try:
        big = bytes(1 << 20)  # far more than a pipe holds: sent with no reader yet
        for message in (MESSAGE, big):
            spool.send(message)
        assert spool.receive() == MESSAGE
        assert spool.receive() == big
        spool.close_writing()  # the sender is gone
        with pytest.raises(protocol.Ended):
            spool.receive()
    finally:
        spool.close()
