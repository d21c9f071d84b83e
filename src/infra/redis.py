"""Redis client: short timeouts, so an outage turns into a quick fallback, not a stall."""

from __future__ import annotations

import functools

import redis.utils
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

# redis-py reads its own version from the package metadata (an email-format parse, ~5 ms of CPU) for
# every connection it opens; a burst that grows a pool by a hundred connections cost a quarter of
# an API process's CPU for seconds (bench/README.md, "Send path, third pass"). The version does not change.
redis.utils.get_lib_version = functools.cache(redis.utils.get_lib_version)

POOL_WAIT_SECONDS = 1.0
# Errors that mean "Redis could not answer": callers fall back to PostgreSQL.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


def create_redis(url: str) -> Redis:
    """An asyncio Redis client on `url` (decoded strings, pooled, short timeouts).

    The pool blocks for up to `POOL_WAIT_SECONDS` when all its connections are busy: a burst
    (a thousand sockets disconnecting at once, each running its hooks) waits its turn instead
    of failing with "Too many connections" as redis-py's default pool does."""
    pool = BlockingConnectionPool.from_url(
        url, decode_responses=True, socket_connect_timeout=0.5, socket_timeout=1.0,
        health_check_interval=15, max_connections=200, timeout=POOL_WAIT_SECONDS, retry_on_timeout=False,
        # One immediate retry: a pooled connection may be dead after a Redis restart.
        retry=Retry(NoBackoff(), 1), retry_on_error=[RedisConnectionError],
    )
    return Redis.from_pool(pool)


async def redis_alive(redis: Redis) -> bool:
    """Whether Redis answers PING."""
    try:
        return bool(await redis.ping())
    except REDIS_ERRORS:
        return False
