"""Malformed input refused before any handler runs, as 400 problems naming the field.

Every module gets this for free: bodies that are not UTF-8, JSON nested deeper than any of our
schemas (msgspec recurses and would raise RecursionError: a 500), and NUL characters in a body
string or a query value (PostgreSQL refuses 0x00 in text: a 500 deep inside a service).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from src.infra.http.problems import send_problem

MAX_JSON_DEPTH = 32
# The JSON escape of NUL (any hex case); a raw 0x00 byte is looked for too.
_NUL_ESCAPE = re.compile(rb"\\u0000", re.IGNORECASE)


def _find_nul(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (or key) holding NUL, or None."""
    if isinstance(value, str):
        return path or "body" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return path or "body"
            if (found := _find_nul(item, here)) is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _find_nul(item, f"{path}[{index}]" if path else f"[{index}]")) is not None:
                return found
    return None


def _too_deep(value: Any, depth: int = 0) -> bool:
    if depth > MAX_JSON_DEPTH:
        return True
    if isinstance(value, dict):
        return any(_too_deep(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_too_deep(v, depth + 1) for v in value)
    return False


def body_problem(body: bytes) -> tuple[str, str, str | None] | None:
    """(code, detail, field) when a JSON body must be refused, else None."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_text", "the body is not valid UTF-8", None
    suspicious_nul = b"\x00" in body or _NUL_ESCAPE.search(body) is not None
    deep = body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH
    if not suspicious_nul and not deep:
        return None
    try:
        value = msgspec.json.decode(body)
    except RecursionError:
        return "validation_failed", f"the body is nested deeper than {MAX_JSON_DEPTH} levels", None
    except msgspec.DecodeError:
        return None  # not JSON: the framework answers that with its own 400
    if _too_deep(value):
        return "validation_failed", f"the body is nested deeper than {MAX_JSON_DEPTH} levels", None
    if suspicious_nul and (field := _find_nul(value)) is not None:
        return "invalid_text", f"{field} contains a NUL character", field
    return None


def query_problem(query_string: bytes) -> tuple[str, str, str | None] | None:
    """(code, detail, field) when a query string holds NUL or bytes that are not UTF-8."""
    if b"%00" not in query_string and b"\x00" not in query_string and b"%" not in query_string:
        return None
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8",
                          errors="strict")
    except UnicodeDecodeError:
        return "invalid_text", "the query string is not valid UTF-8", None
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            return "invalid_text", f"{key or 'query'} contains a NUL character", key or None
    return None


def input_guard(max_body_bytes: int) -> Any:
    """ASGI middleware factory (Litestar `middleware=[...]`): the checks above on every HTTP request."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guard(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            if (found := query_problem(scope.get("query_string", b""))) is not None:
                await send_problem(send, 400, *found)
                return
            content_type = dict(scope["headers"]).get(b"content-type", b"").lower()
            # Litestar decodes a body as JSON whatever its declared type; binary uploads are left alone.
            textual = not content_type or b"json" in content_type or content_type.startswith(b"text/")
            if scope.get("method") in ("GET", "HEAD", "OPTIONS") or not textual:
                await app(scope, receive, send)
                return
            chunks: list[bytes] = []
            size, more = 0, True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    await app(scope, _replay([message]), send)
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_body_bytes:
                    await send_problem(send, 413, "payload_too_large",
                                       f"the body is larger than {max_body_bytes} bytes", None)
                    return
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = b"".join(chunks)
            if (found := body_problem(body)) is not None:
                await send_problem(send, 400, *found)
                return
            await app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)

        return guard

    return middleware


def _replay(messages: list[ReceiveMessage], then: Receive | None = None) -> Receive:
    """A `receive` that hands out `messages` first, then defers to `then` (disconnect waits)."""
    pending = list(messages)

    async def receive() -> ReceiveMessage:
        if pending:
            return pending.pop(0)
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive
