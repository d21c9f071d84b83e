"""uvicorn's websockets-sansio protocol, lighter per idle connection (issue 8, target 6).

The same protocol with its receive queue and `writable` event made of lists (light_queue.py),
and the parsed handshake request and response (their header objects, ~2 KB) dropped once the
handshake is answered: uvicorn and websockets read them only to accept or reject it.
"""

from __future__ import annotations

from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol, State

from src.socket.light_queue import LightQueue, ListEvent


class LightWebSocketProtocol(WebSocketsSansIOProtocol):
    """`uvicorn --ws websockets-sansio`, keeping less per connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = LightQueue()  # type: ignore[assignment]
        self.writable = ListEvent()
        self.writable.set()

    async def send(self, message: ASGISendEvent) -> None:
        """uvicorn's send; once the handshake is answered, forget its request and response."""
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
