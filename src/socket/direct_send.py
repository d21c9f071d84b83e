"""One emit to many sockets: the WebSocket frame is built once and written to each idle socket.

python-socketio sends an emit to N sockets as N tasks, each putting the packet on its socket's
Engine.IO queue, whose writer task wakes, encodes the packet and hands it to uvicorn, which
builds the WebSocket frame and writes it: ~100 µs of CPU per socket, so a group message to
1,000 sockets cost ~0.1 s of a core (bench/groups.py). Server-to-client frames are unmasked
and, without permessage-deflate, identical for every recipient, so here the frame is built
once per emit and written straight to the transport of every socket whose Engine.IO queue is
empty and whose writer task waits on it (nothing queued or in flight before it, so the order of
a socket's packets is kept) and whose connection is open and writable. Any other socket
(polling, a queue to drain, back-pressure, a ping overdue, another WebSocket implementation)
takes the library's path.

A large fan-out yields the event loop every `FANOUT_CHUNK` sockets: one `send()` per socket costs
~15 µs, so a group message to 1,000 sockets held the loop for 15-20 ms in one callback, and two
in a row 40 ms (bench/loopmon.py during bench/groups.py), while received frames, refusals, acks
and database replies waited. Local deliveries stay in emit order: each one holds `emit_order`
(an uncontended lock is taken without yielding), so a later emit never overtakes an earlier
one on a socket the earlier one has not reached yet.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import msgspec
from engineio import packet as eio_packet
from engineio.async_drivers.asgi import WebSocket
from socketio import packet as sio_packet
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from src.socket.manager import RoomIndexedRedisManager

FANOUT_CHUNK = 128  # sockets written per event-loop turn (~2 ms of send() calls)


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame (what a server sends) holding `payload`."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 65_536:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


def writer_waiting(queue: asyncio.Queue[Any]) -> bool:
    """Whether the socket's Engine.IO writer task is parked in `queue.get()`, so every packet queued
    before has been written. An empty queue alone is not enough: on Python 3.11 `wait_for` takes
    the packet in an inner task and the writer writes it a loop turn later, and a writer held by
    back-pressure keeps packets it took."""
    getters = queue._getters  # type: ignore[attr-defined]  # asyncio.Queue's waiting get() futures
    return queue.empty() and any(not getter.done() for getter in getters)


def direct_websocket(connections: dict[str, WebSocketsSansIOProtocol]) -> type[WebSocket]:
    """Engine.IO's ASGI WebSocket wrapper that records each socket's uvicorn connection in
    `connections` (by Engine.IO sid) while it is open, when frames can be written to it as is."""

    class DirectWebSocket(WebSocket):
        async def __call__(self, environ: dict[str, Any]) -> str:
            sid = getattr(getattr(self.handler, "__self__", None), "sid", None)
            connection = getattr(environ.get("asgi.send"), "__self__", None)
            if not (isinstance(sid, str) and isinstance(connection, WebSocketsSansIOProtocol)
                    and not connection.conn.extensions):  # permessage-deflate: frames differ per socket
                return await super().__call__(environ)  # type: ignore[no-any-return]
            connections[sid] = connection
            try:
                return await super().__call__(environ)  # type: ignore[no-any-return]
            finally:
                if connections.get(sid) is connection:
                    del connections[sid]

    return DirectWebSocket


class DirectSendRedisManager(RoomIndexedRedisManager):
    """The Redis manager whose local emits (no ack callback, no binary) write one shared frame."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: dict[str, WebSocketsSansIOProtocol] = {}
        self.emit_order = asyncio.Lock()  # local deliveries one after another (a large one yields the loop)

    def set_server(self, server: Any) -> None:
        """Also route the server's WebSocket upgrades through `DirectWebSocket`, and its packets to one
        socket (acks above all) straight to the transport when nothing is queued before them."""
        super().set_server(server)
        eio = server.eio
        eio._async = {**eio._async, "websocket": direct_websocket(self.connections)}

        async def send_packet(eio_sid: str, pkt: Any) -> None:  # python-socketio's `_send_packet`
            encoded = pkt.encode()
            if not isinstance(encoded, str):  # attachments: several packets, the library's way
                for part in encoded:
                    await eio.send(eio_sid, part)
                return
            if not self.write_packet(eio_sid, encoded):
                await eio.send(eio_sid, encoded)

        server._send_packet = send_packet

    def write_packet(self, eio_sid: str, encoded: str) -> bool:
        """Write one encoded Socket.IO packet to a socket's transport now if nothing is queued before
        it (the Engine.IO queue and writer task are skipped); False: not written, queue it."""
        frame = text_frame(f"{eio_packet.MESSAGE}{encoded}".encode())
        return self._write(eio_sid, frame, time.time() - self.server.eio.ping_timeout)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        async with self.emit_order:
            await self._deliver(message)

    async def emit_struct(self, event: str, data: Any, rooms: list[str], skip_sid: str | None = None) -> None:
        """`emit(event, to_builtins(data), room=rooms, skip_sid=skip_sid)` on the default namespace, without
        an ack callback: the packet encoded once, straight from `data` (a msgspec struct, or builtins),
        delivered here as `_deliver` does, and published (built the library's way) only when another
        API process listens. Falls back to `emit` when msgspec cannot encode `data`."""
        try:  # as AsyncManager.emit: no data, no argument
            body = msgspec.json.encode([event] if data is None else [event, data])
        except (TypeError, UnicodeEncodeError, OverflowError, msgspec.EncodeError):
            await self.emit(event, msgspec.to_builtins(data), namespace="/", room=rooms, skip_sid=skip_sid)
            return
        if "/" in self.rooms:  # else no socket of this process is connected
            async with self.emit_order:
                await self._deliver_encoded("/", rooms, skip_sid, f"{sio_packet.EVENT}{body.decode()}")
        if not self.skips_publish():
            await self._publish({"method": "emit", "event": event, "data": [msgspec.to_builtins(data)],
                                 "binary": False, "namespace": "/", "room": rooms, "skip_sid": skip_sid,
                                 "callback": None, "host_id": self.host_id})

    async def _deliver(self, message: dict[str, Any]) -> None:
        callback = message.get("callback")
        namespace = message.get("namespace") or "/"
        if callback is not None or message.get("binary") or namespace not in self.rooms:
            await super()._handle_emit(message)
            return
        data = [] if message["data"] == [None] else message["data"]  # as AsyncManager.emit
        pkt = self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[message["event"], *data])
        encoded = pkt.encode()
        if not isinstance(encoded, str):  # attachments: several packets
            await super()._handle_emit(message)
            return
        await self._deliver_encoded(namespace, message.get("room"), message.get("skip_sid"), encoded)

    async def _deliver_encoded(self, namespace: str, room: Any, skip: Any, encoded: str) -> None:
        """Write the encoded Socket.IO packet to this process's sockets in `room` (but `skip`)."""
        skip_sids = set(skip) if isinstance(skip, list) else {skip}
        frame = text_frame(f"{eio_packet.MESSAGE}{encoded}".encode())
        queued: list[str] = []
        overdue = time.time() - self.server.eio.ping_timeout
        # get_participants copies the rooms' members first: sockets leaving while this yields are safe
        for count, (sid, eio_sid) in enumerate(self.get_participants(namespace, room), 1):
            if sid not in skip_sids and not self._write(eio_sid, frame, overdue):
                queued.append(eio_sid)
            if count % FANOUT_CHUNK == 0:
                await asyncio.sleep(0)  # let the loop read and answer what waits (see the docstring)
        if queued:
            eio_pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
            await asyncio.wait([asyncio.create_task(self.server._send_eio_packet(e, eio_pkt)) for e in queued])

    def _write(self, eio_sid: str, frame: bytes, overdue: float) -> bool:
        """Write `frame` to this socket's transport if nothing is queued before it; False: not done."""
        connection = self.connections.get(eio_sid)
        if connection is None:
            return False
        eio_socket = self.server.eio.sockets.get(eio_sid)
        if (eio_socket is None or not eio_socket.upgraded or eio_socket.upgrading or eio_socket.closing
                or eio_socket.closed or not writer_waiting(eio_socket.queue)):
            return False
        last_ping = eio_socket.last_ping
        if last_ping and last_ping < overdue:
            return False  # the library's send closes it
        if (connection.close_sent or connection.disconnected or not connection.writable.is_set()
                or connection.conn.state is not State.OPEN or connection.transport.is_closing()):
            return False
        connection.transport.write(frame)
        return True
