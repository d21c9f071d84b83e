"""Which users have a socket connected right now (Redis sets fed by the socket lifecycle hooks).

A message to a user with no socket is pushed at once; one with a socket waits PUSH_DELAY for
a read. A set outlives a crashed API process by at most its TTL: the cost of a stale entry is a
delayed (not a lost) push.
"""

from __future__ import annotations

import uuid

from src.common.auth import Principal
from src.infra.context import AppContext

TTL_SECONDS = 6 * 3600


def socket_key(user_id: uuid.UUID) -> str:
    return f"notifications:sockets:{user_id}"


class SocketPresence:
    """Tracks socket ids per user (messages.py's Lua script asks who has none)."""

    def __init__(self, ctx: AppContext) -> None:
        self._redis = ctx.redis

    async def on_connect(self, principal: Principal, sid: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(socket_key(principal.user_id), sid)
            pipe.expire(socket_key(principal.user_id), TTL_SECONDS)
            await pipe.execute()

    async def on_disconnect(self, principal: Principal, sid: str) -> None:
        await self._redis.srem(socket_key(principal.user_id), sid)
