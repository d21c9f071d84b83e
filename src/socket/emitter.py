"""The realtime interface, implemented over python-socketio (any process, any worker)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec
import structlog
from redis.asyncio import Redis

from src.infra.redis import REDIS_ERRORS

log = structlog.get_logger("chatty.socket")
REVOKED_CHANNEL = "chatty:sessions:revoked"
EmitFn = Callable[..., Awaitable[Any]]


def user_room(user_id: uuid.UUID | str) -> str:
    """The room every socket of a user joins."""
    return f"user:{user_id}"


def session_room(session_id: uuid.UUID | str) -> str:
    """The room every socket of one sign-in session joins."""
    return f"session:{session_id}"


RoomFn = Callable[[str, str], Awaitable[None]]


class SocketRealtime:
    """Emits through a Socket.IO server or a write-only Redis manager (workers).

    `enter_room` / `leave_room` exist only in API processes (given the server's functions).
    """

    def __init__(self, emit: EmitFn, redis: Redis, *, enter_room: RoomFn | None = None,
                 leave_room: RoomFn | None = None) -> None:
        self._emit = emit
        # The server's manager encodes a struct's emit once (direct_send.py); workers' managers do not.
        manager = getattr(getattr(emit, "__self__", None), "manager", None)
        self._emit_struct: Callable[..., Awaitable[None]] | None = getattr(manager, "emit_struct", None)
        self._redis = redis
        self._enter_room = enter_room
        self._leave_room = leave_room

    async def emit_to_users(self, event: str, data: Any, user_ids: Iterable[uuid.UUID], *,
                            skip_sid: str | None = None) -> None:
        """Send `event` to the user rooms of `user_ids` in one publish."""
        rooms = sorted({user_room(u) for u in user_ids})
        if not rooms:
            return
        try:
            if self._emit_struct is not None:
                await self._emit_struct(event, data, rooms, skip_sid)
            else:
                await self._emit(event, msgspec.to_builtins(data), room=rooms, skip_sid=skip_sid, namespace="/")
        except REDIS_ERRORS as exc:  # at most once by design: clients catch up through /sync
            log.warning("socket.emit_failed", socket_event=event, error=repr(exc))

    async def emit_to_room(self, event: str, data: Any, room: str, *, skip_sid: str | None = None) -> None:
        """Send `event` to one room (or one socket id) on every process."""
        try:
            await self._emit(event, msgspec.to_builtins(data), room=room, skip_sid=skip_sid, namespace="/")
        except REDIS_ERRORS as exc:
            log.warning("socket.emit_failed", socket_event=event, error=repr(exc))

    async def enter_room(self, sid: str, room: str) -> None:
        """Put a socket of this process in a room."""
        if self._enter_room is None:
            raise RuntimeError("rooms can only be entered in an API process")
        await self._enter_room(sid, room)

    async def leave_room(self, sid: str, room: str) -> None:
        """Take a socket of this process out of a room."""
        if self._leave_room is None:
            raise RuntimeError("rooms can only be left in an API process")
        await self._leave_room(sid, room)

    async def revoke_sessions(self, session_ids: Iterable[uuid.UUID]) -> None:
        """Ask every API process to notify and disconnect the sockets of these sessions."""
        for session_id in session_ids:
            try:
                await self._redis.publish(REVOKED_CHANNEL, str(session_id))
            except REDIS_ERRORS as exc:  # their next reconnect is refused anyway
                log.warning("socket.revoke_publish_failed", error=repr(exc))
