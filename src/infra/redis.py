"""Redis client: short timeouts, so an outage turns into a quick fallback, not a stall."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

# Errors that mean "Redis could not answer": callers fall back to PostgreSQL.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


def create_redis(url: str) -> Redis:
    """An asyncio Redis client on `url` (decoded strings, pooled, short timeouts)."""
    return Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=0.5, socket_timeout=1.0,
        health_check_interval=15, max_connections=200, retry_on_timeout=False,
        # One immediate retry: a pooled connection may be dead after a Redis restart.
        retry=Retry(NoBackoff(), 1), retry_on_error=[RedisConnectionError],
    )


async def redis_alive(redis: Redis) -> bool:
    """Whether Redis answers PING."""
    try:
        return bool(await redis.ping())
    except REDIS_ERRORS:
        return False
