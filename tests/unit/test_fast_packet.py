"""The socket packet class's binary check answers as python-socketio's."""

from __future__ import annotations

from typing import Any

import pytest
from socketio import packet

from src.socket.fast_packet import FastPacket


@pytest.mark.parametrize("data", [
    None, "x", 1, 1.5, True, [], {}, ["a", {"b": [1, None]}], {"ok": True, "data": {"id": "x", "media": []}},
    b"raw", bytearray(b"x"), ["a", {"b": [1, b"x"]}], {"a": {"b": {"c": bytearray(b"y")}}}, ("t", b"x"),
    {"k": ("tuple", b"x")},
])
def test_binary_check_matches_the_library(data: Any) -> None:
    assert FastPacket.data_is_binary(data) == packet.Packet.data_is_binary(data)


def test_binary_packets_still_use_attachments() -> None:
    encoded = FastPacket(packet.EVENT, data=["file", b"\x00\x01"]).encode()
    assert isinstance(encoded, list) and encoded[1] == b"\x00\x01"
    assert FastPacket(packet.ACK, data=[{"ok": True}], id=3).encode() == '33[{"ok":true}]'
