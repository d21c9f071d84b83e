"""The shared-frame emit: the bytes websockets would write, and the library's path whenever a socket is not idle."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any

import socketio
from engineio import packet as eio_packet
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from src.socket.direct_send import FANOUT_CHUNK, DirectSendRedisManager, text_frame

NS = "/"


def test_text_frame_is_what_websockets_serializes() -> None:
    for size in (0, 1, 125, 126, 65_535, 65_536, 100_000):
        payload = b"x" * size
        assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False


WRITERS: list[asyncio.Task[Any]] = []


def _socket(sid: str, *, queued: bool = False, writer: bool = True) -> Any:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    if queued:
        queue.put_nowait("earlier packet")
    elif writer:  # an Engine.IO writer task parked in get()
        WRITERS.append(asyncio.ensure_future(queue.get()))
    return SimpleNamespace(sid=sid, upgraded=True, upgrading=False, closing=False, closed=False, queue=queue,
                           last_ping=None)


def _connection() -> Any:
    writable = asyncio.Event()
    writable.set()
    return SimpleNamespace(close_sent=False, disconnected=False, writable=writable,
                           conn=SimpleNamespace(state=State.OPEN), transport=FakeTransport())


async def test_idle_sockets_get_the_frame_others_the_library_path() -> None:
    manager = DirectSendRedisManager("redis://127.0.0.1:1/0")
    sent: list[tuple[str, Any]] = []

    async def send_eio_packet(eio_sid: str, pkt: Any) -> None:
        sent.append((eio_sid, pkt))

    sockets = {"e1": _socket("e1"), "e2": _socket("e2", queued=True), "e3": _socket("e3"), "e4": _socket("e4"),
               "e5": _socket("e5", writer=False)}  # e5: its writer took a packet and has not written it yet
    await asyncio.sleep(0)
    server = SimpleNamespace(packet_class=socketio.packet.Packet, _send_eio_packet=send_eio_packet,
                             eio=SimpleNamespace(sockets=sockets, ping_timeout=20))
    manager.server = server  # type: ignore[assignment]
    connections = {sid: _connection() for sid in ("e1", "e2", "e3", "e5")}  # e4: no direct connection (polling)
    manager.connections.update(connections)
    for i, eio_sid in enumerate(sockets, start=1):
        manager.basic_enter_room(f"s{i}", NS, None, eio_sid=eio_sid)
        manager.basic_enter_room(f"s{i}", NS, f"user:{i}", eio_sid=eio_sid)
    sockets["e3"].last_ping = time.time() - 60  # its pong is overdue: the library's send closes it

    await manager._handle_emit({"method": "emit", "event": "message:new", "data": [{"body": "hé"}], "binary": False,
                                "namespace": NS, "room": ["user:1", "user:2", "user:3", "user:4", "user:5"],
                                "skip_sid": None, "callback": None})

    text = "42" + json.dumps(["message:new", {"body": "hé"}], separators=(",", ":"))
    assert connections["e1"].transport.written == [text_frame(text.encode())]
    assert all(not connections[s].transport.written for s in ("e2", "e3", "e5"))
    assert sorted(sid for sid, _ in sent) == ["e2", "e3", "e4", "e5"]
    assert all(p.packet_type == eio_packet.MESSAGE and "4" + p.data == text for _, p in sent)
    for writer in WRITERS:
        writer.cancel()


async def test_skipped_sid_gets_nothing() -> None:
    manager = DirectSendRedisManager("redis://127.0.0.1:1/0")
    server = SimpleNamespace(packet_class=socketio.packet.Packet, _send_eio_packet=None,
                             eio=SimpleNamespace(sockets={"e1": _socket("e1")}, ping_timeout=20))
    manager.server = server  # type: ignore[assignment]
    await asyncio.sleep(0)
    manager.connections["e1"] = connection = _connection()
    manager.basic_enter_room("s1", NS, "user:1", eio_sid="e1")
    await manager._handle_emit({"event": "x", "data": [None], "binary": False, "namespace": NS,
                                "room": "user:1", "skip_sid": "s1", "callback": None})
    assert connection.transport.written == []
    for writer in WRITERS:
        writer.cancel()


async def test_a_large_fan_out_yields_the_loop_and_a_later_emit_never_overtakes_it() -> None:
    manager = DirectSendRedisManager("redis://127.0.0.1:1/0")
    count = FANOUT_CHUNK * 3
    sockets = {f"e{i}": _socket(f"e{i}") for i in range(count)}
    await asyncio.sleep(0)
    manager.server = SimpleNamespace(packet_class=socketio.packet.Packet,  # type: ignore[assignment]
                                     _send_eio_packet=None, eio=SimpleNamespace(sockets=sockets, ping_timeout=20))
    connections = {sid: _connection() for sid in sockets}
    manager.connections.update(connections)
    for i, eio_sid in enumerate(sockets):
        manager.basic_enter_room(f"s{i}", NS, "group", eio_sid=eio_sid)
        manager.basic_enter_room(f"s{i}", NS, f"user:{i}", eio_sid=eio_sid)
    seen_midway: list[int] = []

    async def other_work() -> None:  # gets the loop while a fan-out is half done
        while not first.done():
            written = sum(len(c.transport.written) for c in connections.values())
            if written % count:
                seen_midway.append(written)
            await asyncio.sleep(0)

    def emit(event: str, room: str) -> Any:
        return manager._handle_emit({"event": event, "data": [None], "binary": False, "namespace": NS,
                                     "room": room, "skip_sid": None, "callback": None})

    first = asyncio.ensure_future(emit("first", "group"))
    await asyncio.sleep(0)  # the group's fan-out has written one chunk and yielded
    await asyncio.gather(first, emit("second", f"user:{count - 1}"), other_work())  # to a socket not reached yet
    assert seen_midway
    events = [[json.loads(w[4:])[0] for w in c.transport.written] for c in connections.values()]
    assert events[:-1] == [["first"]] * (count - 1)
    assert events[-1] == ["first", "second"]
    for writer in WRITERS:
        writer.cancel()
