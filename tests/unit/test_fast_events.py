"""Which Engine.IO text messages fast_events.py takes past python-socketio's dispatch, and the ack it
writes (python-socketio's own encoding: `3<id>[answer]`, the id without leading zeros)."""

from __future__ import annotations

import asyncio
from typing import Any

from src.socket.fast_events import FastEvents


class _Manager:
    def __init__(self) -> None:
        self.written: list[tuple[str, str]] = []

    def sid_from_eio_sid(self, eio_sid: str, namespace: str) -> str | None:
        return "sid-1" if eio_sid == "eio-1" else None

    def is_connected(self, sid: str, namespace: str) -> bool:
        return True

    def write_packet(self, eio_sid: str, encoded: str) -> bool:
        self.written.append((eio_sid, encoded))
        return True


class _Server:
    def __init__(self) -> None:
        self.manager = _Manager()
        self.calls: list[tuple[str, Any]] = []

        async def send(sid: str, data: Any = None) -> dict[str, Any]:
            self.calls.append((sid, data))
            return {"ok": True, "data": {"body": data.get("body")}}

        self.handlers = {"/": {"message:send": send}}


async def test_takes_an_acked_send_and_writes_the_library_ack() -> None:
    server = _Server()
    fast = FastEvents(server)  # type: ignore[arg-type]
    assert fast.take("eio-1", '42007["message:send",{"body":"é\\n"}]')
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert server.calls == [("sid-1", {"body": "é\n"})]
    assert server.manager.written == [("eio-1", '37[{"ok":true,"data":{"body":"é\\n"}}]')]


async def test_leaves_everything_else_to_the_library() -> None:
    server = _Server()
    fast = FastEvents(server)  # type: ignore[arg-type]
    for frame in ('42["message:send",{"body":"x"}]',  # no ack asked
                  '421["typing:start",{}]',  # another event
                  '421["message:send",{}, 2]', '421["message:send"]',  # not one argument
                  '421["message:send",{"body":"\\ud800"}]',  # a lone surrogate: the library's decoder
                  '421["message:send",{"body":',  # not JSON
                  '421["message:send",{"body":"' + "x" * 20_000 + '"}]'):  # past MAX_CHARS
        assert not fast.take("eio-1", frame), frame
    assert not fast.take("eio-unknown", '421["message:send",{}]')  # not connected to the namespace
    await asyncio.sleep(0)
    assert server.calls == [] and server.manager.written == []
