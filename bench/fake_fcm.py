"""A lean fake of FCM's `messages:send` for benchmarks, in its own process (bench/push.py starts it).

    python bench/fake_fcm.py PORT

The tests' fake (tests/e2e/push_fakes.py: aiohttp in a thread, JWT checks, scripted answers)
costs more per request than the worker it measures and shares the bench's GIL. This one is an
asyncio protocol on uvloop with httptools' parser (HTTP/1.1 keep-alive, pipelining-safe): every
`POST …/messages:send` with a bearer gets 200 and is recorded as (time, conversation_id, seq)
(CLOCK_MONOTONIC, comparable with the bench's `time.monotonic()`). `GET /stats?since=N` answers
{count, peers, last_at, pushes: [[at, conversation_id, seq], … from index N]}. The OAuth token
endpoint stays the tests' fake (one request per hour).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import httptools
import msgspec
import uvloop

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def _response(status: bytes, body: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


SENT = _response(b"200 OK", b'{"name":"projects/bench/messages/1"}')
UNAUTHENTICATED = _response(b"401 Unauthorized", b'{"error":{"code":401,"status":"UNAUTHENTICATED"}}')
NOT_FOUND = _response(b"404 Not Found", b"{}")


class Recorder:
    """What the server accepted: push times and the (conversation, seq) a push covers."""

    def __init__(self) -> None:
        self.pushes: list[tuple[float, str | None, int | None]] = []
        self.peers: set[Any] = set()

    def stats(self, since: int) -> bytes:
        return _encode({"count": len(self.pushes), "peers": len(self.peers),
                        "last_at": self.pushes[-1][0] if self.pushes else None, "pushes": self.pushes[since:]})


class FcmProtocol(asyncio.Protocol):
    """One keep-alive connection; requests answered in order as their bodies complete."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._bearer = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._recorder.peers.add(transport.get_extra_info("peername"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._body, self._bearer = b"", [], False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"authorization" and value.startswith(b"Bearer ") and len(value) > 7:
            self._bearer = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        assert self._transport is not None
        self._transport.write(self._answer())

    def _answer(self) -> bytes:
        url = self._url
        if url.endswith(b"/messages:send") and self._parser.get_method() == b"POST":
            if not self._bearer:
                return UNAUTHENTICATED
            message = _decode(b"".join(self._body))["message"]
            data = message.get("data") or {}
            seq = data.get("seq")
            self._recorder.pushes.append((time.monotonic(), data.get("conversation_id"),
                                          int(seq) if seq is not None else None))
            return SENT
        if url.startswith(b"/stats"):
            since = int(url.partition(b"since=")[2] or 0)
            return _response(b"200 OK", self._recorder.stats(since))
        return NOT_FOUND


async def serve(port: int) -> None:
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FcmProtocol(recorder), "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
