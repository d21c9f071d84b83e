"""Hot client events taken where their websocket frame is read, past python-socketio's dispatch.

An acked `message:send` went through Engine.IO's packet decode and `AsyncSocket.receive`, the
Engine.IO message hook (early_refusal.py), python-socketio's packet decode, `_handle_event`, its
task, `_trigger_event`'s handler lookup, then an ACK `Packet` built, checked for binary data and
encoded: each layer's Python, on every send. Here (engine.py's reader calls `take` for every text
frame `42…` of a socket opened over websocket) a frame `42<id>["message:send",{…}]` of the default
namespace is decoded once with msgspec and the handler python-socketio would have called (the
gateway's: admission guard, per-socket event limit, session check, payload checks, the send) runs
in a task of its own, as python-socketio runs it; its answer is encoded once as `3<id>[answer]` and
written as python-socketio writes acks (straight to the transport when nothing is queued before
it, else through the socket's Engine.IO queue, so the socket's frames keep their order).

Anything else takes the library's path unchanged: another event, an event asking no ack, another
namespace, a frame msgspec cannot read (e.g. a lone surrogate escape: the library's decoder
answers it), more or fewer than one argument, a socket not (yet) connected to the namespace, or a
frame longer than `MAX_CHARS` (so the gateway's 64 KiB payload check sees the same bytes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import socketio

from src.socket import fast_json

FAST_EVENTS = ("message:send",)
MAX_CHARS = 16 * 1024  # ≤ 64 KiB of UTF-8 whatever the characters: the gateway's size check is unchanged
_DIGITS = frozenset("0123456789")
_decode = msgspec.json.decode


class FastEvents:
    """Runs the handlers of `names` for frames read by engine.py, the acks written as the library writes them."""

    def __init__(self, sio: socketio.AsyncServer, names: tuple[str, ...] = FAST_EVENTS) -> None:
        self._sio = sio
        self._prefixes = tuple(f'["{name}",' for name in names)
        self._tasks: set[asyncio.Task[None]] = set()

    def install(self) -> None:
        """Let engine.py's websocket reader hand text frames to `take`."""
        self._sio.eio._chatty_fast_event = self.take  # type: ignore[attr-defined]

    def take(self, eio_sid: str, data: str) -> bool:
        """Handle the Engine.IO text message `data` (starting "42") if it is a fast event: True when taken."""
        end, size = 2, len(data)
        while end < size and data[end] in _DIGITS:
            end += 1
        if end == 2 or size > MAX_CHARS or not data.startswith(self._prefixes, end):
            return False
        try:
            message = _decode(data[end:])
        except msgspec.DecodeError:
            return False
        if type(message) is not list or len(message) != 2:
            return False
        sio = self._sio
        handler = sio.handlers.get("/", {}).get(message[0])
        sid = sio.manager.sid_from_eio_sid(eio_sid, "/")
        if handler is None or sid is None or not sio.manager.is_connected(sid, "/"):
            return False
        task = asyncio.ensure_future(self._run(handler, sid, eio_sid, int(data[2:end]), message[1]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, handler: Callable[..., Awaitable[Any]], sid: str, eio_sid: str, ident: int,
                   payload: Any) -> None:
        """python-socketio's `_handle_event_internal` for one acked event of the default namespace."""
        try:
            answer = await handler(sid, payload)
        except asyncio.CancelledError:  # as the library: the ack carries no data
            answer = None
        data = [] if answer is None else list(answer) if isinstance(answer, tuple) else [answer]
        # The gateway's answers are plain JSON values (msgspec.to_builtins): never binary attachments.
        encoded = f"3{ident}{fast_json.dumps(data)}"
        manager = self._sio.manager
        write = getattr(manager, "write_packet", None)
        if write is None or not write(eio_sid, encoded):
            await self._sio.eio.send(eio_sid, encoded)
