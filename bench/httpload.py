"""A lean closed-loop HTTP/1.1 load generator for GET requests (keep-alive, one request in flight
per connection), for benches that share the machine's cores with the server they measure.

aiohttp's client costs about as much CPU per request as a light API route (its request and
response objects, header multidicts, the connector's bookkeeping); this one writes a request
prepared once and parses only the status line, `Content-Length` and the body's length, so the
generator takes a small share of the cores. Responses must carry `Content-Length` (Litestar's do).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from benchlib import LoadResult


class _Connection(asyncio.Protocol):
    """One keep-alive connection: sends the request again as soon as the previous answer is in."""

    def __init__(self, request: bytes, on_response: Callable[[_Connection, int], None],
                 on_lost: Callable[[_Connection], None]) -> None:
        self._request, self._on_response, self._on_lost = request, on_response, on_lost
        self._buffer = bytearray()
        self._need = -1  # bytes of the whole response once its head is parsed; -1: head not parsed
        self._status = 0
        self.started = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self) -> None:
        self.started = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            if self._need < 0:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buffer[:end]).lower()
                self._status = int(head[9:12])
                at = head.find(b"\r\ncontent-length:")
                if at < 0:
                    raise RuntimeError("a response without Content-Length")
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17: stop if stop >= 0 else len(head)])
                self._need = end + 4 + length
            if len(buffer) < self._need:
                return
            del buffer[:self._need]
            self._need = -1
            self._on_response(self, self._status)

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost(self)


async def http_closed_loop(url: str, headers: dict[str, str], concurrency: int, warmup: float,
                           duration: float) -> LoadResult:
    """Keep `concurrency` GET requests of `url` in flight for `warmup` + `duration` seconds; count
    the requests started after the warm-up and finished inside the window."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    result = LoadResult()
    loop = asyncio.get_running_loop()
    begin = time.perf_counter()
    measure_from, end = begin + warmup, begin + warmup + duration
    done = loop.create_future()
    open_connections = concurrency

    def on_response(conn: _Connection, status: int) -> None:
        nonlocal open_connections
        now = time.perf_counter()
        if conn.started >= measure_from and now <= end:
            if status == 200:
                result.ok += 1
                result.latencies.append(now - conn.started)
            else:
                result.errors += 1
                kind = f"http_{status}"
                result.kinds[kind] = result.kinds.get(kind, 0) + 1
        if now < end:
            conn.send()
        else:
            open_connections -= 1
            if open_connections == 0 and not done.done():
                done.set_result(None)

    def on_lost(conn: _Connection) -> None:  # the server closed it: an error, the connection stops
        nonlocal open_connections
        if conn in closing:
            return
        closing.add(conn)
        result.errors += 1
        result.kinds["connection_lost"] = result.kinds.get("connection_lost", 0) + 1
        open_connections -= 1
        if open_connections == 0 and not done.done():
            done.set_result(None)

    closing: set[_Connection] = set()
    connections = []
    for _ in range(concurrency):
        _, conn = await loop.create_connection(lambda: _Connection(request, on_response, on_lost),
                                               parts.hostname or "127.0.0.1", parts.port or 80)
        connections.append(conn)
    for conn in connections:
        conn.send()
    try:
        await asyncio.wait_for(done, warmup + duration + 10)
    finally:
        for conn in connections:
            closing.add(conn)
            if conn.transport is not None:
                conn.transport.close()
    return result
