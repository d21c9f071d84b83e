"""uvicorn's websockets-sansio protocol, lighter per idle connection (issue 8, target 6).

The same protocol with its receive queue and `writable` event made of lists (light_queue.py),
and the parsed handshake request and response (their header objects, ~2 KB) dropped once the
handshake is answered: uvicorn and websockets read them only to accept or reject it.

A received text message may also be answered here, as its frame is parsed (`set_refusal`:
early_refusal.py refuses client events this way while the process is overloaded), instead of
being queued for the application's reader task, which under overload runs a loop turn or more
later, behind the backlog.

A websocket upgrade may be refused the same way (`set_upgrade_refusal`): while the process is
overloaded a new connection is answered `503` with `Retry-After` before any of its handshake
work (Engine.IO and Socket.IO handshakes, token check, lifecycle hooks: ~3 ms of CPU) is done,
so a connection storm does not take the CPU the sockets already connected need (issue 10,
presence churn); clients reconnect with their back-off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import Protocol, State

from src.socket.light_queue import LightQueue, ListEvent

# Given a received text message, the bytes to write back instead of queueing it for the application
# (b"": drop it silently), or None: queue it as usual.
Refusal = Callable[[bytes | bytearray], bytes | None]
_refusal: Refusal | None = None
# Before a websocket upgrade is accepted: None to accept it, or the seconds of its 503's Retry-After.
UpgradeRefusal = Callable[[], int | None]
_upgrade_refusal: UpgradeRefusal | None = None
REFUSED_UPGRADE_BODY = "The server is busy, try again shortly"


def set_refusal(refusal: Refusal | None) -> None:
    """Answer received text messages with `refusal` (one per process: the API's) before they are queued."""
    global _refusal
    _refusal = refusal


def set_upgrade_refusal(refusal: UpgradeRefusal | None) -> None:
    """Ask `refusal` before accepting a websocket upgrade (one per process: the API's)."""
    global _upgrade_refusal
    _upgrade_refusal = refusal


class _Corked:
    """A transport whose writes are held until `uncork` (everything else is the transport's)."""

    __slots__ = ("held", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport, self.held = transport, bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.held += data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class LightWebSocketProtocol(WebSocketsSansIOProtocol):
    """`uvicorn --ws websockets-sansio`, keeping less per connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = LightQueue()  # type: ignore[assignment]
        self.writable = ListEvent()
        self.writable.set()

    def handle_connect(self, event: Request) -> None:
        """uvicorn's, unless the upgrade is refused now: then `503` with `Retry-After`, and closed."""
        refusal = _upgrade_refusal
        retry_after = refusal() if refusal is not None else None
        if retry_after is None:
            super().handle_connect(event)
            return
        response = self.conn.reject(HTTPStatus.SERVICE_UNAVAILABLE, REFUSED_UPGRADE_BODY)
        response.headers["Retry-After"] = str(retry_after)
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        self.conn.send_response(response)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()

    async def send(self, message: ASGISendEvent) -> None:
        """uvicorn's send; once the handshake is answered, forget its request and response. The 101
        response is held (corked) until the application's first frame is written, or the end of
        this loop turn: one write for both (src/socket/engine.py writes Engine.IO's OPEN at once)."""
        if message["type"] == "websocket.accept" and not self.handshake_complete:
            self.transport = _Corked(self.transport)  # type: ignore[assignment]
            asyncio.get_running_loop().call_soon(self.uncork)
        await super().send(message)
        if self.handshake_complete and getattr(self, "response", None) is not None:
            self.request = self.response = None  # type: ignore[assignment]
            conn = self.conn
            # websockets' server parser generator keeps the parsed request in its frame while it
            # parses frames: start the frame parser alone, as it is at this point (nothing received
            # after the handshake: a client waits for the response before sending frames).
            if conn.state is State.OPEN and not conn.reader.buffer and not conn.reader.eof:
                conn.parser = Protocol.parse(conn)
                next(conn.parser)

    def uncork(self) -> None:
        """Write what the corked transport holds, and write straight to the transport again."""
        corked = self.transport
        if isinstance(corked, _Corked):
            self.transport = corked.transport
            if corked.held and not self.transport.is_closing():
                self.transport.write(bytes(corked.held))

    def send_receive_event_to_app(self) -> None:
        """uvicorn's: queue a received message for the application, unless the refusal answers it now
        (only where an answer can be written at once: an open, writable connection without extensions)."""
        refusal = _refusal
        if (refusal is not None and self.curr_msg_data_type == "text" and len(self.frames) == 1
                and not self.close_sent and not self.conn.extensions and self.writable.is_set()
                and self.conn.state is State.OPEN and not self.transport.is_closing()):
            answer = refusal(self.frames[0])
            if answer is not None:
                self.frames = []
                if answer:
                    self.transport.write(answer)  # a whole frame: never inside another write's frame
                return
        super().send_receive_event_to_app()
