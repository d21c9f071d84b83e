"""Rate limits (the `limits` library, moving windows in Redis)."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import ConnectionError as RedisConnectionError

from src.common.errors import RateLimited

DEFAULT_DETAIL = "Too many attempts, try again later"


class RateLimiter:
    """Rules are strings such as "5/15minutes"; keys name who is counted."""

    def __init__(self, redis_url: str) -> None:
        self._limiter = MovingWindowRateLimiter(
            RedisStorage(redis_url, implementation="redispy", key_prefix="rl"))

    async def hit(self, rule: str, *key: str, detail: str = DEFAULT_DETAIL) -> None:
        """Count one attempt; raise RateLimited (with Retry-After) past the limit."""
        try:
            allowed = await self._limiter.hit(parse(rule), *key)
        except RedisConnectionError:
            # A pooled connection that Redis closed (a restart) fails once; a new one is taken.
            allowed = await self._limiter.hit(parse(rule), *key)
        if not allowed:
            await self._refuse(rule, key, detail)

    async def check(self, rule: str, *key: str, detail: str = DEFAULT_DETAIL) -> None:
        """Raise RateLimited when the limit is already used up, without counting."""
        if not await self._limiter.test(parse(rule), *key):
            await self._refuse(rule, key, detail)

    async def count(self, rule: str, *key: str) -> None:
        """Count one attempt (a failure) without refusing it."""
        await self._limiter.hit(parse(rule), *key)

    async def _refuse(self, rule: str, key: tuple[str, ...], detail: str) -> None:
        stats = await self._limiter.get_window_stats(parse(rule), *key)
        raise RateLimited(detail, retry_after=math.ceil(stats.reset_time - time.time()))
