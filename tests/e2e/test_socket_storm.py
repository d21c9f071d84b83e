"""A storm of sockets closing together loses no socket state (issue 10, presence churn).

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


async def test_a_disconnect_storm_leaves_no_socket_behind(http: httpx.AsyncClient, api: ApiProcess,
                                                          app_env: dict[str, str]) -> None:
    people = await users(http, USERS)
    clients: list[socketio.AsyncClient] = []
    for start in range(0, USERS * SOCKETS_PER_USER, 50):
        clients += await asyncio.gather(*(connect_socket(api.base_url, people[i % USERS]["access_token"])
                                          for i in range(start, min(start + 50, USERS * SOCKETS_PER_USER))))
    redis = aioredis.from_url(app_env["REDIS_URL"], decode_responses=True)
    try:
        async def all_connected() -> bool:
            counts = [await redis.scard(f"notifications:sockets:{uid(p)}") for p in people]
            return counts == [SOCKETS_PER_USER] * USERS

        assert await _eventually(all_connected)
        await asyncio.gather(*(c.disconnect() for c in clients))  # all at once

        async def all_gone() -> bool:
            left = [await redis.scard(f"notifications:sockets:{uid(p)}") for p in people]
            live = [await redis.zcard(f"presence:sockets:{uid(p)}") for p in people]
            return left == [0] * USERS and live == [0] * USERS

        assert await _eventually(all_gone)
    finally:
        await redis.aclose()


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
