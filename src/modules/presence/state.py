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

Each step is one Lua script, so a connect and a sweep of the same user never interleave: either
the sweep sees the new socket (no transition), or it clears the announced state first and the
connect finds it clear (an online transition). A reconnect within the debounce finds the
state still announced: no transition either way, so a flapping connection sends nothing.
(The scripts touch keys they compute from a user id: fine on one Redis, not on a cluster.)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

PREFIX = "presence:"
DUE = f"{PREFIX}due"
DUE_TTL = 86_400

_ALIVE = """
-- KEYS: sockets, online, due, kick; ARGV: sid, expires_ms, ttl_s, user, due_ttl_s, kick_s
-- 0: no transition; 1: came online; 3: came online and this caller must start the sweep
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[3], 'GT', ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[5])
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  if redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[6]) then return 3 end
  return 1
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 0
"""

_GONE = """
-- KEYS: sockets, due, kick; ARGV: sid, now_ms, check_at_ms, user, due_ttl_s, kick_s
-- {live sockets left, 1 when this caller must start the sweep}
redis.call('ZREM', KEYS[1], ARGV[1])
local live = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[2], '+inf')
if live == 0 then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[6]) then return {0, 1} end
end
return {live, 0}
"""

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
MAX_BATCH = 500  # scripts per pipelined round trip


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def online_key(user_id: uuid.UUID | str) -> str:
    return f"{PREFIX}online:{user_id}"


def sockets_key(user_id: uuid.UUID | str) -> str:
    return f"{PREFIX}sockets:{user_id}"


@dataclass(frozen=True)
class Alive:
    """What a connect or heartbeat found: a transition to announce, a sweep chain to start."""

    came_online: bool
    kick: bool


class ScriptBatch:
    """Runs the scripts called during one turn of the event loop as one pipelined round trip.

    Sockets connect and leave in bursts (a deploy, a network blip): one Redis connection and one
    round trip per burst instead of one per socket (the pool has a bounded number of connections).
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._calls: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]] = []

    async def run(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls.append((script, keys, args, future))
        if len(self._calls) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        calls, self._calls = self._calls, []
        for start in range(0, len(calls), MAX_BATCH):
            task = asyncio.ensure_future(self._execute(calls[start:start + MAX_BATCH]))
            task.add_done_callback(_discard)

    async def _execute(self, calls: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._pipelined(calls)
            missing = {id(calls[i][0]): calls[i][0] for i, r in enumerate(results) if isinstance(r, NoScriptError)}
            if missing:  # Redis restarted (or flushed its scripts): load them, run those calls again
                for script in missing.values():
                    await self._redis.script_load(script.script)
                again = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
                for i, result in zip(again, await self._pipelined([calls[i] for i in again]), strict=True):
                    results[i] = result
        except BaseException as exc:  # every caller gets the error (a Redis outage, a cancellation)
            for *_, future in calls:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            return
        for (*_, future), result in zip(calls, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _pipelined(self, calls: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]]
                         ) -> list[Any]:
        """EVALSHA each call in one round trip (no SCRIPT EXISTS first, as a pipelined Script does)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for script, keys, args, _ in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            return cast(list[Any], await pipe.execute(raise_on_error=False))


def _discard(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: the callers were told


class PresenceState:
    """The scripts above, with the timings of this deployment."""

    def __init__(self, redis: Redis, *, timeout: float, debounce: float) -> None:
        self._redis = redis
        self._timeout = timeout
        self._debounce = debounce
        self._ttl = int(2 * timeout + debounce) + 1  # outlives any check that is due
        self._alive = redis.register_script(_ALIVE)
        self._gone = redis.register_script(_GONE)
        self._settle = redis.register_script(_SETTLE)
        self._batch = ScriptBatch(redis)

    async def alive(self, user_id: uuid.UUID, sid: str) -> Alive:
        """A socket connected or sent a heartbeat: did the user just come online (announce it), and
        must the caller start a sweep chain (at most one caller per KICK_EVERY seconds)?"""
        expires = _ms(time.time() + self._timeout)
        found = int(await self._batch.run(self._alive, [sockets_key(user_id), online_key(user_id), DUE, KICK],
                                          [sid, expires, self._ttl, str(user_id), DUE_TTL, KICK_EVERY]))
        return Alive(came_online=bool(found & 1), kick=bool(found & 2))

    async def gone(self, user_id: uuid.UUID, sid: str) -> tuple[int, bool]:
        """A socket disconnected: (the user's live sockets left, whether the caller must start a
        sweep chain). With none left, a check is due after the debounce."""
        now = time.time()
        live, kick = await self._batch.run(self._gone, [sockets_key(user_id), DUE, KICK],
                                           [sid, _ms(now), _ms(now + self._debounce), str(user_id), DUE_TTL,
                                            KICK_EVERY])
        return int(live), bool(kick)

    async def settle(self, batch: int = 500) -> list[uuid.UUID]:
        """Pop the due checks; the users who just went offline (their announced state is cleared)."""
        gone = cast(list[Any], await self._settle(keys=[DUE], args=[_ms(time.time()), batch, PREFIX]))
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
