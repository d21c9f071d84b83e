"""Which users have a socket connected right now (Redis sets fed by the socket lifecycle hooks).

A message to a user with no socket is pushed at once; one with a socket waits PUSH_DELAY for
a read. A set outlives a crashed API process by at most its TTL: the cost of a stale entry is a
delayed (not a lost) push.

The hooks only queue their writes (src/infra/ordered_writes.py): every module's hook writes of a
burst of connects or disconnects go as a few ordered pipelines, retried while Redis is away, so a
socket's SADD always lands before its SREM and a disconnect storm loses none.
"""

from __future__ import annotations

import uuid
from typing import Any

from src.common.auth import Principal
from src.infra.context import AppContext
from src.infra.ordered_writes import ordered_writes

TTL_SECONDS = 6 * 3600


def socket_key(user_id: uuid.UUID) -> str:
    return f"notifications:sockets:{user_id}"


class SocketPresence:
    """Tracks socket ids per user (messages.py's Lua script asks who has none)."""

    def __init__(self, ctx: AppContext) -> None:
        self._writes = ordered_writes(ctx.redis, ctx.settings.socket_hook_write_window)

    async def on_connect(self, principal: Principal, sid: str) -> None:
        key = socket_key(principal.user_id)

        def fill(pipe: Any) -> None:
            pipe.sadd(key, sid)
            pipe.expire(key, TTL_SECONDS)

        self._writes.write(fill)

    async def on_disconnect(self, principal: Principal, sid: str) -> None:
        key = socket_key(principal.user_id)
        self._writes.write(lambda pipe: pipe.srem(key, sid))

    async def flush(self) -> None:
        """Write what the hooks queued (at shutdown)."""
        await self._writes.flush()
