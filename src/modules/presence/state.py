"""Presence state in Redis: live sockets per user, the announced state, and checks that are due.

Keys (every one with a TTL):
- `presence:sockets:{user}`: sorted set socket id → expiry (ms). A socket counts while its
  expiry is ahead: a connect or a heartbeat pushes it `timeout` ahead; a disconnect removes it.
  Sockets of every API process land here, so "online on any process" is one key.
- `presence:online:{user}`: set while the user is *announced* online (what contacts were told).
- `presence:kick`: set for KICK_EVERY seconds by whoever starts a sweep chain (see actors.py).
- `presence:due`: sorted set user → when to check them next (ms): the expiry of their newest
  socket, or `debounce` after their last socket left. The workers' sweep pops what is due and
  decides: no live socket and announced online → offline (a transition); otherwise nothing.

Connects, heartbeats and disconnects are written in batches by one Lua script (changes.py), the
sweep by another, so a connect and a sweep of the same user never interleave: either the sweep
sees the new socket (no transition), or it clears the announced state first and the connect
finds it clear (an online transition). A reconnect within the debounce finds the
state still announced: no transition either way, so a flapping connection sends nothing.
(The scripts touch keys they compute from a user id: fine on one Redis, not on a cluster.)
"""

from __future__ import annotations

import time
import uuid
from typing import Any, cast

from redis.asyncio import Redis

PREFIX = "presence:"
DUE = f"{PREFIX}due"
DUE_TTL = 86_400

_SETTLE = """
-- KEYS: due; ARGV: now_ms, batch, prefix
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local gone = {}
for _, user in ipairs(due) do
  redis.call('ZREM', KEYS[1], user)
  local sockets = ARGV[3] .. 'sockets:' .. user
  redis.call('ZREMRANGEBYSCORE', sockets, '-inf', ARGV[1])
  local newest = redis.call('ZRANGE', sockets, -1, -1, 'WITHSCORES')
  if #newest == 0 then
    if redis.call('DEL', ARGV[3] .. 'online:' .. user) == 1 then table.insert(gone, user) end
  else
    redis.call('ZADD', KEYS[1], 'GT', newest[2], user)
  end
end
return gone
"""


KICK = f"{PREFIX}kick"
KICK_EVERY = 5  # seconds: at most one sweep kick per period across API processes


def online_key(user_id: uuid.UUID | str) -> str:
    return f"{PREFIX}online:{user_id}"


def sockets_key(user_id: uuid.UUID | str) -> str:
    return f"{PREFIX}sockets:{user_id}"


class PresenceState:
    """The sweep's script and the reads (the socket changes are written by changes.py)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._settle = redis.register_script(_SETTLE)

    async def settle(self, batch: int = 500) -> list[uuid.UUID]:
        """Pop the due checks; the users who just went offline (their announced state is cleared)."""
        gone = cast(list[Any], await self._settle(keys=[DUE], args=[int(time.time() * 1000), batch, PREFIX]))
        return [uuid.UUID(u.decode() if isinstance(u, bytes) else str(u)) for u in gone]

    async def online(self, user_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Those of `user_ids` announced online (one pipelined round trip)."""
        if not user_ids:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for u in user_ids:
                pipe.exists(online_key(u))
            found = await pipe.execute()
        return {u for u, present in zip(user_ids, found, strict=True) if present}
