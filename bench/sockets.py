"""Two Socket.IO clients for the load generator, behind one small interface.

- `RawSocket`: an aiohttp websocket speaking Engine.IO 4 / Socket.IO 5 directly (default
  namespace only): one task per socket, a few KB each. It offers permessage-deflate like
  browsers do, so a server that accepts it shows the cost.
- `SioSocket`: python-socketio's AsyncClient (websocket transport), for comparison.

Both: `await connect()`, `await call(event, data, wait)` → the ack's first argument,
`on(event, handler)` with `handler(data)` synchronous, `await close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import socketio

Handler = Callable[[Any], None]


class ConnectRefused(Exception):
    """The server answered the Socket.IO CONNECT with an error (e.g. "unauthorized")."""


class RawSocket:
    """Engine.IO over a raw websocket: ping/pong, CONNECT with auth, EVENT, ACK."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, auth: dict[str, Any],
                 *, deflate: bool = True) -> None:
        self._session, self._auth, self._deflate = session, auth, deflate
        self._url = base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._handlers: dict[str, Handler] = {}
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self.connected = False

    def on(self, event: str, handler: Handler) -> None:
        self._handlers[event] = handler

    async def connect(self, wait: float = 20) -> None:
        async with asyncio.timeout(wait):
            self._ws = await self._session.ws_connect(self._url, compress=15 if self._deflate else 0,
                                                      autoping=True, max_msg_size=1 << 20)
            opened = await self._ws.receive_str()
            if not opened.startswith("0"):
                raise ConnectionError(f"unexpected Engine.IO open: {opened[:80]}")
            await self._ws.send_str("40" + json.dumps(self._auth))
            while True:
                packet = await self._ws.receive_str()
                if packet == "2":
                    await self._ws.send_str("3")
                elif packet.startswith("40"):
                    break
                elif packet.startswith("42"):  # an event to the user's room may precede the CONNECT ack
                    self._dispatch(packet[2:])
                elif packet.startswith("44"):
                    await self._ws.close()
                    raise ConnectRefused(json.loads(packet[2:]).get("message", packet[2:]))
                else:
                    raise ConnectionError(f"unexpected packet during connect: {packet[:80]}")
        self.connected = True
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                packet: str = msg.data
                if packet == "2":
                    await self._ws.send_str("3")
                elif packet.startswith("42"):
                    self._dispatch(packet[2:])
                elif packet.startswith("43"):
                    self._resolve(packet[2:])
                elif packet.startswith("41") or packet.startswith("1"):
                    break
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            self.connected = False
            for future in self._acks.values():
                if not future.done():
                    future.set_exception(ConnectionError("disconnected"))

    def _dispatch(self, body: str) -> None:
        start = body.index("[")
        event, *args = json.loads(body[start:])
        handler = self._handlers.get(event)
        if handler is not None:
            handler(args[0] if args else None)

    def _resolve(self, body: str) -> None:
        start = body.index("[")
        future = self._acks.pop(int(body[:start]), None)
        if future is not None and not future.done():
            args = json.loads(body[start:])
            future.set_result(args[0] if args else None)

    async def call(self, event: str, data: Any, wait: float = 10) -> Any:
        assert self._ws is not None
        ack_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        try:
            await self._ws.send_str(f"42{ack_id}" + json.dumps([event, data], separators=(",", ":")))
            return await asyncio.wait_for(future, wait)
        finally:
            self._acks.pop(ack_id, None)

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                await self._ws.send_str("41")
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


class SioSocket:
    """python-socketio's AsyncClient sharing one aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, auth: dict[str, Any],
                 *, deflate: bool = False) -> None:
        self._client = socketio.AsyncClient(reconnection=False, http_session=session, ssl_verify=False)
        self._url, self._auth = base_url, auth

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    def on(self, event: str, handler: Handler) -> None:
        async def wrapper(data: Any = None) -> None:
            handler(data)

        self._client.on(event, wrapper)

    async def connect(self, wait: float = 20) -> None:
        try:
            await self._client.connect(self._url, transports=["websocket"], auth=self._auth,
                                       wait_timeout=wait)
        except socketio.exceptions.ConnectionError as exc:
            raise ConnectRefused(str(exc)) from None

    async def call(self, event: str, data: Any, wait: float = 10) -> Any:
        return await self._client.call(event, data, timeout=wait)

    async def close(self) -> None:
        await self._client.disconnect()


CLIENTS: dict[str, type[RawSocket] | type[SioSocket]] = {"raw": RawSocket, "sio": SioSocket}
