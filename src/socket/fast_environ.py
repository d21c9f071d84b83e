"""python-engineio's ASGI `translate_request`, without a class created per request.

The library's version defines its request-body reader class inside the function, so every
Engine.IO request (each new websocket among them) builds a new class: a few percent of an API
process's CPU under presence churn (bench/presence.py, py-spy). This is the same environ with one
module-level reader class; the rest is the library's code.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]


class AwaitablePayload:
    """The request body, read on demand (`wsgi.input`), as the library's per-request class."""

    def __init__(self, event: dict[str, Any], receive: Receive) -> None:
        self.event = event
        self._first_type = event["type"]
        self._receive = receive
        self.payload: bytes | None = None

    async def read(self, length: int | None = None) -> bytes:
        if self.payload is None and self._first_type == "http.request":
            self.payload = self.event.get("body") or b""
            while self.event.get("more_body"):
                self.event = await self._receive()
                if self.event["type"] == "http.request" and (length is None or len(self.payload) < length):
                    self.payload += self.event.get("body") or b""
        payload = self.payload or b""
        if length is None:
            self.payload = b""
            return payload
        self.payload = payload[length:]
        return payload[:length]


async def translate_request(scope: dict[str, Any], receive: Receive, send: Any) -> dict[str, Any]:
    """The WSGI-style environ python-engineio builds for an ASGI request (see the module doc)."""
    event = await receive()
    if event["type"] not in ("http.request", "websocket.connect"):
        return {}
    raw_uri = scope["path"]
    query_string = ""
    if scope.get("query_string"):
        try:
            query_string = scope["query_string"].decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raw_uri += "?" + query_string
    environ: dict[str, Any] = {
        "wsgi.input": AwaitablePayload(event, receive), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
        "wsgi.async": True, "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "SERVER_SOFTWARE": "asgi", "REQUEST_METHOD": scope.get("method", "GET"), "PATH_INFO": scope["path"],
        "QUERY_STRING": query_string, "RAW_URI": raw_uri, "SCRIPT_NAME": "", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "0", "SERVER_NAME": "asgi", "SERVER_PORT": "0",
        "asgi.receive": receive, "asgi.send": send, "asgi.scope": scope,
    }
    for raw_name, raw_value in scope["headers"]:
        try:
            name = raw_name.upper().decode("utf-8")
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
            continue
        key = "HTTP_" + name.replace("-", "_")
        if key in environ:
            value = f"{environ[key]},{value}"
        environ[key] = value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    return environ
