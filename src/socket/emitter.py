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


class SocketRealtime:
    """Emits through a Socket.IO server or a write-only Redis manager (workers)."""

    def __init__(self, emit: EmitFn, redis: Redis) -> None:
        self._emit = emit
        self._redis = redis

    async def emit_to_users(self, event: str, data: Any, user_ids: Iterable[uuid.UUID], *,
                            skip_sid: str | None = None) -> None:
        """Send `event` to the user rooms of `user_ids` in one publish."""
        rooms = sorted({user_room(u) for u in user_ids})
        if not rooms:
            return
        try:
            await self._emit(event, msgspec.to_builtins(data), room=rooms, skip_sid=skip_sid, namespace="/")
        except REDIS_ERRORS as exc:  # at most once by design: clients catch up through /sync
            log.warning("socket.emit_failed", socket_event=event, error=repr(exc))

    async def revoke_sessions(self, session_ids: Iterable[uuid.UUID]) -> None:
        """Ask every API process to notify and disconnect the sockets of these sessions."""
        for session_id in session_ids:
            try:
                await self._redis.publish(REVOKED_CHANNEL, str(session_id))
            except REDIS_ERRORS as exc:  # their next reconnect is refused anyway
                log.warning("socket.revoke_publish_failed", error=repr(exc))
