"""The Socket.IO server: token auth at connect, user rooms, acked client events."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import time
import uuid
from typing import Any

import msgspec
import socketio
import structlog
from redis.asyncio import Redis

from src.common.auth import Principal
from src.common.errors import AppError, Overloaded, RateLimited
from src.common.queries.auth import AuthenticateAccessToken
from src.infra import metrics
from src.infra.admission import Admission
from src.infra.modules import SocketHandler, SocketLifecycleHook
from src.infra.queries import QueryBus
from src.infra.redis import REDIS_ERRORS
from src.socket import early_refusal, engine, fast_json
from src.socket.connect_gate import ConnectGate
from src.socket.direct_send import DirectSendRedisManager
from src.socket.emitter import REVOKED_CHANNEL, session_room, user_room
from src.socket.event_window import EventWindow
from src.socket.fast_events import FastEvents
from src.socket.fast_packet import FastPacket
from src.socket.manager import RoomIndexedRedisManager
from src.socket.session_guard import REFRESH_SECONDS, SessionGuard

log = structlog.get_logger("chatty.socket")
MAX_PAYLOAD_BYTES = 64 * 1024
SESSION_SWEEP_SECONDS = 10.0
PING_INTERVAL = 25


def create_socket_server(redis_url: str, cors_origins: list[str] | None = None,
                         polling: bool | None = None) -> socketio.AsyncServer:
    """An ASGI Socket.IO server whose emits reach sockets on every API process.

    Browsers may connect from `cors_origins` ("*": any); with none, only from the API's own
    origin (clients that send no Origin, as native apps, are not concerned). Without `polling`
    (default: the SOCKET_POLLING setting, off with several API processes on one port) only the
    websocket transport is accepted: a long-polling request is answered 400 "Invalid transport"."""
    from src.infra.config import get_settings

    settings = get_settings()
    if polling is None:
        polling = settings.socket_polling
    engine.install()  # two tasks per websocket, heartbeats on one timer wheel (src/socket/engine.py)
    # new sockets wait their turn behind message work (src/socket/connect_gate.py)
    per_tick = settings.socket_connects_per_tick
    gate = ConnectGate(per_tick=per_tick, max_wait=settings.socket_connect_max_wait) if per_tick else None
    engine.set_connect_gate(gate)
    origins: str | list[str] | None = "*" if "*" in (cors_origins or []) else (cors_origins or None)
    sio = socketio.AsyncServer(
        async_mode="asgi", client_manager=DirectSendRedisManager(redis_url),
        cors_allowed_origins=origins, max_http_buffer_size=MAX_PAYLOAD_BYTES, json=fast_json, serializer=FastPacket,
        ping_interval=PING_INTERVAL, ping_timeout=20, logger=False, engineio_logger=False,
        transports=["polling", "websocket"] if polling else ["websocket"],
    )
    FastEvents(sio).install()  # `message:send` taken at frame read, past the library's dispatch
    return sio


def tune_gc() -> None:
    """Fewer, cheaper full garbage collections for a process holding thousands of sockets.

    Each socket keeps ~180 GC-tracked objects alive; with the default thresholds full
    collections walked them all several times a minute under load, stalling every socket for
    100-400 ms (bench/messaging.py). Objects alive after start-up are frozen out of
    collections, and young collections run less often so fewer short-lived objects reach
    the old generation.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


def ack_error(code: str, detail: str, field: str | None = None) -> dict[str, Any]:
    """The ack of a failed client event."""
    error: dict[str, Any] = {"code": code, "detail": detail}
    if field:
        error["field"] = field
    return {"ok": False, "error": error}


def overloaded_ack(retry_after: int) -> dict[str, Any]:
    """The ack of a client event refused because the process is too busy (retry after `retry_after` s)."""
    error = ack_error("overloaded", "The server is busy, try again shortly")
    error["error"]["retry_after"] = retry_after
    return error


class SocketGateway:
    """Connects sockets (auth, rooms), dispatches client events to module handlers.

    Every client event is counted per socket (`event_limit`, in this process: a socket lives on
    one process): past the limit the ack is `rate_limited`, and a socket that keeps sending
    after that (as many refused events again within the window) is disconnected. Every event
    also needs its session still active (see session_guard.py).
    """

    def __init__(self, sio: socketio.AsyncServer, queries: QueryBus, redis: Redis,
                 event_limit: str = "20/second", admission: Admission | None = None, *,
                 refuse_upgrades: bool = False) -> None:
        self.sio, self._queries, self._redis = sio, queries, redis
        self._admission = admission  # refuses handler work as `overloaded` when the process is too busy
        if admission is not None:  # and client events at frame receipt (early_refusal.py)
            early_refusal.install(sio, admission, overloaded_ack(admission.retry_after),
                                  refuse_upgrades=refuse_upgrades)  # and new websockets (503)
        self._principals: dict[str, Principal] = {}
        self._revocations: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.sessions = SessionGuard(queries)
        self._events, self._refusals = EventWindow(event_limit), EventWindow(event_limit)
        self._on_connect: list[SocketLifecycleHook] = []
        self._on_disconnect: list[SocketLifecycleHook] = []
        sio.on("connect", self._connect)
        sio.on("disconnect", self._disconnect)
        # guarded as registered events are, so a ticket reserved at frame receipt is claimed (admission.py)
        sio.on("*", admission.guard(self._unknown_event, overloaded_ack) if admission else self._unknown_event)

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        principal = None
        if isinstance(token, str) and token:
            principal = await self._queries.ask(AuthenticateAccessToken(token=token, socket=True))
        if principal is None:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        self._principals[sid] = principal
        self.sessions.verified(principal.session_id)
        if isinstance(manager := self.sio.manager, RoomIndexedRedisManager):
            await manager.wait_joined()  # every other API process publishes its emits (src/socket/peers.py)
        await self.sio.enter_room(sid, user_room(principal.user_id))
        await self.sio.enter_room(sid, session_room(principal.session_id))
        metrics.SOCKET_CONNECTIONS.inc()
        await self._run_hooks(self._on_connect, principal, sid)

    async def _disconnect(self, sid: str, *_: Any) -> None:
        principal = self._principals.pop(sid, None)
        self._events.forget(sid)
        self._refusals.forget(sid)
        if principal is not None:
            metrics.SOCKET_CONNECTIONS.dec()
            await self._run_hooks(self._on_disconnect, principal, sid)

    async def _unknown_event(self, event: str, sid: str, data: Any = None) -> dict[str, Any]:
        """A client event no module handles: still counted against the socket's limit."""
        principal = self._principals.get(sid)
        if principal is None:
            return ack_error("unauthorized", "not connected")
        if (refused := await self._admit(sid, principal)) is not None:
            return refused
        return ack_error("unknown_event", "No such event")

    def add_lifecycle(self, on_connect: list[SocketLifecycleHook],
                      on_disconnect: list[SocketLifecycleHook]) -> None:
        """Tell these module hooks about sockets connecting to and leaving this process."""
        self._on_connect.extend(on_connect)
        self._on_disconnect.extend(on_disconnect)

    @staticmethod
    async def _run_hooks(hooks: list[SocketLifecycleHook], principal: Principal, sid: str) -> None:
        for hook in hooks:  # a failing hook never refuses the socket nor stops the others
            try:
                await hook(principal, sid)
            except Exception as exc:
                log.warning("socket.lifecycle_hook_failed", hook=getattr(hook, "__qualname__", "?"),
                            error=repr(exc))

    def principal(self, sid: str) -> Principal | None:
        """Who is on socket `sid` (this process only)."""
        return self._principals.get(sid)

    def register(self, event: str, handler: SocketHandler) -> None:
        """Route client event `event` to `handler`; its result or error becomes the ack."""
        handler = Admission.overload_as_error(handler)
        async def on_event(sid: str, data: Any = None) -> dict[str, Any]:
            principal = self._principals.get(sid)
            if principal is None:
                return ack_error("unauthorized", "not connected")
            if (refused := await self._admit(sid, principal)) is not None:
                return refused
            try:
                too_large = len(msgspec.json.encode(data)) > MAX_PAYLOAD_BYTES
            except UnicodeEncodeError:  # a lone surrogate from a JSON escape: not text at all
                return ack_error("invalid_text", "the payload is not valid Unicode text")
            if too_large:
                return ack_error("payload_too_large", "payload is too large")
            try:
                return {"ok": True, "data": msgspec.to_builtins(await handler(principal, sid, data))}
            except AppError as exc:
                error = ack_error(exc.code, exc.detail, exc.field)
                if isinstance(exc, RateLimited | Overloaded):
                    error["error"]["retry_after"] = exc.retry_after
                return error
            except Exception as exc:
                log.exception("socket.handler_failed", socket_event=event, error=repr(exc))
                return ack_error("internal_error", "Something went wrong on our side")

        # refused at once, before any check, when the process is too busy (src/infra/admission.py)
        self.sio.on(event, self._admission.guard(on_event, overloaded_ack) if self._admission else on_event)

    async def _admit(self, sid: str, principal: Principal) -> dict[str, Any] | None:
        """None when the event may run; else its error ack (the socket may be disconnected)."""
        if not self._events.hit(sid):
            # Refusals are counted with the same rule: a second window's worth of them is a flood.
            if not self._refusals.hit(sid):
                log.warning("socket.flood_disconnected", user_id=str(principal.user_id))
                await self.sio.disconnect(sid)
            retry_after = max(1, math.ceil(self._events.retry_after(sid)))
            error = ack_error("rate_limited", "Too many events, slow down")
            error["error"]["retry_after"] = retry_after
            return error
        try:
            allowed = await self.sessions.allows(principal.session_id)
        except Exception as exc:  # the session cannot be checked: refuse rather than trust it
            log.warning("socket.session_check_failed", error=repr(exc))
            return ack_error("unavailable", "Try again shortly")
        if not allowed:  # the ack goes out first; then `session:revoked` and the disconnect
            task = asyncio.create_task(self._revoke_local(str(principal.session_id)))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return ack_error("session_revoked", "This session was signed out")
        return None

    def start(self) -> None:
        """Tune the collector for many sockets; listen for revoked sessions published by any process;
        sweep local sessions against PostgreSQL periodically."""
        tune_gc()
        self._revocations = asyncio.create_task(self._watch_revocations(), name="socket-revocations")
        self._sweeper = asyncio.create_task(self._sweep_sessions(), name="socket-session-sweep")

    async def stop(self) -> None:
        """Stop listening for revocations and sweeping."""
        for task in (self._revocations, self._sweeper):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _sweep_sessions(self) -> None:
        """Refresh every local session's verdict each REFRESH_SECONDS (so events find them checked);
        end the sockets of sessions found stale every SESSION_SWEEP_SECONDS (a sending socket is
        refused with `session_revoked` at its next event before that)."""
        last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                stale = await self.sessions.stale(p.session_id for p in list(self._principals.values()))
                if time.monotonic() - last_sweep < SESSION_SWEEP_SECONDS - REFRESH_SECONDS / 2:
                    continue
                last_sweep = time.monotonic()
                for session_id in stale:
                    await self._revoke_local(str(session_id))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("socket.session_sweep_failed", error=repr(exc))

    async def _watch_revocations(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(REVOKED_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self._revoke_local(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                log.warning("socket.revocations_reconnect", error=repr(exc))
                await asyncio.sleep(1)

    async def _revoke_local(self, session_id: str) -> None:
        with contextlib.suppress(ValueError):
            self.sessions.revoke(uuid.UUID(session_id))
        sids = [sid for sid, _ in self.sio.manager.get_participants("/", session_room(session_id))]
        for sid in sids:
            await self.sio.emit("session:revoked", {"session_id": session_id}, to=sid, ignore_queue=True)
            await self.sio.disconnect(sid, ignore_queue=True)
