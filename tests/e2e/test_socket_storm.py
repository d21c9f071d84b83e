"""A storm of sockets closing together loses no socket state, even while Redis stalls (issue 10).

When 2,000 sockets closed at once, the lifecycle hooks' Redis writes waited for a pooled connection
longer than the pool allows and failed (`ConnectionError`), leaving their sockets in
`notifications:sockets:{user}` (a user with no socket counted as connected). The hooks' writes now
go through src/infra/ordered_writes.py: a few ordered pipelines, sent again while Redis fails.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import redis.asyncio as aioredis
import socketio
from redis.exceptions import ConnectionError as RedisConnectionError

from src.infra.ordered_writes import OrderedWrites
from tests.e2e.harness import ApiProcess, connect_socket
from tests.e2e.messaging_support import uid, users

SOCKETS_PER_USER = 40
USERS = 5


async def _eventually(check: Any, attempts: int = 100) -> bool:
    for _ in range(attempts):
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


# Redis runs one script at a time: while this one loops, every other client waits for its reply.
_STALL_REDIS = """
local function now() local t = redis.call('TIME'); return t[1] * 1000000 + t[2] end
local start = now()
while now() - start < tonumber(ARGV[1]) * 1000000 do end
return 1
"""


async def _disconnect_storm(http: httpx.AsyncClient, api: ApiProcess, app_env: dict[str, str],
                            stall_redis_for: float = 0.0) -> None:
    """Connect SOCKETS_PER_USER sockets for each of USERS users, close them all at once (while Redis
    stalls, if asked), and check that every socket's entry leaves Redis."""
    people = await users(http, USERS)
    clients: list[socketio.AsyncClient] = []
    for start in range(0, USERS * SOCKETS_PER_USER, 50):
        clients += await asyncio.gather(*(connect_socket(api.base_url, people[i % USERS]["access_token"])
                                          for i in range(start, min(start + 50, USERS * SOCKETS_PER_USER))))
    redis = aioredis.from_url(app_env["REDIS_URL"], decode_responses=True)
    stall = aioredis.from_url(app_env["REDIS_URL"], decode_responses=True, socket_timeout=stall_redis_for + 10)
    try:
        async def all_connected() -> bool:
            counts = [await redis.scard(f"notifications:sockets:{uid(p)}") for p in people]
            return counts == [SOCKETS_PER_USER] * USERS

        assert await _eventually(all_connected)
        stalled = asyncio.ensure_future(stall.eval(_STALL_REDIS, 0, stall_redis_for)) if stall_redis_for else None
        await asyncio.sleep(0.05 if stalled else 0)  # the script has started
        await asyncio.gather(*(c.disconnect() for c in clients))  # all at once
        if stalled is not None:
            await stalled

        async def all_gone() -> bool:
            left = [await redis.scard(f"notifications:sockets:{uid(p)}") for p in people]
            live = [await redis.zcard(f"presence:sockets:{uid(p)}") for p in people]
            return left == [0] * USERS and live == [0] * USERS

        assert await _eventually(all_gone)
    finally:
        await redis.aclose()
        await stall.aclose()


async def test_a_disconnect_storm_leaves_no_socket_behind(http: httpx.AsyncClient, api: ApiProcess,
                                                          app_env: dict[str, str]) -> None:
    await _disconnect_storm(http, api, app_env)


async def test_a_disconnect_storm_while_redis_stalls_leaves_no_socket_behind(
        http: httpx.AsyncClient, api: ApiProcess, app_env: dict[str, str]) -> None:
    # Three times the client's socket timeout (1 s). Before the hooks' writes were ordered and retried
    # (ordered_writes.py), this left all 200 sockets in `presence:sockets:*` and 2 of 200 in
    # `notifications:sockets:*`; a 1.5 s stall lost none (the timed-out commands had reached Redis).
    await _disconnect_storm(http, api, app_env, stall_redis_for=3.0)


class FailingFirst:
    """A Redis client whose first `failures` pipelines fail as an exhausted pool does."""

    def __init__(self, redis: aioredis.Redis, failures: int) -> None:
        self._redis, self.failures = redis, failures

    def pipeline(self, transaction: bool = False) -> Any:
        pipe = self._redis.pipeline(transaction=transaction)
        if self.failures > 0:
            self.failures -= 1

            async def fail(*_: Any, **__: Any) -> Any:
                raise RedisConnectionError("No connection available.")

            pipe.execute = fail  # type: ignore[method-assign]
        return pipe


async def test_ordered_writes_are_sent_again_in_order_while_redis_fails(app_env: dict[str, str]) -> None:
    redis = aioredis.from_url(app_env["REDIS_URL"], decode_responses=True)
    key = f"test:ordered:{uuid.uuid4()}"
    try:
        writes = OrderedWrites(FailingFirst(redis, failures=3), window=0.01)  # type: ignore[arg-type]
        for i in range(200):  # each socket added, then removed but the last: order matters
            writes.write(lambda pipe, i=i: pipe.sadd(key, f"s{i}"))
            if i != 199:
                writes.write(lambda pipe, i=i: pipe.srem(key, f"s{i}"))
        await writes.flush(wait=30)
        assert writes.pending == 0
        assert writes.failed_batches == 3
        assert await redis.smembers(key) == {"s199"}
    finally:
        await redis.delete(key)
        await redis.aclose()
