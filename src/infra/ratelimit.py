"""Rate limits (the `limits` library): counters in Redis, in-process counters while Redis is down.

Rules are strings in the `limits` notation ("5/15minutes"); keys name who is counted. When Redis
does not answer, this process counts on its own (`MemoryStorage`) for a few seconds before trying
Redis again: limits then hold per process instead of across processes, which still stops a flood,
and a request never fails or stalls because the counter store is away.
"""

from __future__ import annotations

import functools
import math
import time

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from src.common.errors import RateLimited
from src.infra import metrics
from src.infra.redis import REDIS_ERRORS
from src.infra.redis_tick import tick_pipeline

log = structlog.get_logger("chatty.ratelimit")
DEFAULT_DETAIL = "Too many attempts, try again later"
REDIS_RETRY_AFTER = 5.0  # seconds spent on in-process counters before asking Redis again


@functools.lru_cache(maxsize=256)
def _rule(rule: str) -> RateLimitItem:
    """A parsed rule (parsing is a regex match per call; rules are a handful of settings)."""
    return parse(rule)


class _Backend:
    """One storage with the two strategies used on it."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.moving = MovingWindowRateLimiter(storage)
        self.fixed = FixedWindowRateLimiter(storage)


class RateLimiter:
    """Counts attempts per rule and key; raises RateLimited (429, Retry-After) past a limit."""

    def __init__(self, redis_url: str, redis: Redis | None = None) -> None:
        self._redis = _Backend(RedisStorage(
            redis_url, implementation="redispy", key_prefix="rl", wrap_exceptions=True,
            socket_connect_timeout=0.5, socket_timeout=1.0, health_check_interval=15))
        self._memory = _Backend(MemoryStorage())
        self._redis_down_until = 0.0
        # With the process's shared client (same server), moving-window hits run `limits`' own script
        # in the turn's shared pipeline (redis_tick.py): beside privacy's MGET in one round trip.
        self._shared = redis

    async def hit(self, rule: str, *key: str, detail: str = DEFAULT_DETAIL) -> None:
        """Count one attempt (moving window); raise RateLimited past the limit."""
        item = _rule(rule)
        backend = self._backend()
        try:
            if backend is self._redis and self._shared is not None:
                allowed = await self._hit_shared(item, key)
            else:
                allowed = await backend.moving.hit(item, *key)
        except StorageError as exc:
            backend = self._fall_back(exc)
            allowed = await backend.moving.hit(item, *key)
        if not allowed:
            stats = await backend.moving.get_window_stats(item, *key)
            raise RateLimited(detail, retry_after=math.ceil(stats.reset_time - time.time()))

    async def _hit_shared(self, item: RateLimitItem, key: tuple[str, ...]) -> bool:
        """`MovingWindowRateLimiter.hit` on the Redis storage, its script sent in the turn's shared pipeline."""
        assert self._shared is not None
        storage = self._redis.storage
        bridge = storage.bridge  # type: ignore[attr-defined]
        script = bridge.lua_acquire_moving_window
        name = bridge.prefixed_key(item.key_for(*key))
        args = (time.time(), item.amount, item.get_expiry(), 1)
        try:
            acquired = await tick_pipeline(self._shared).call(
                lambda pipe: pipe.evalsha(script.sha, 1, name, *args))
        except NoScriptError:  # not loaded yet (or Redis restarted): `limits`' own call loads it
            return await self._redis.moving.hit(item, *key)
        except REDIS_ERRORS as exc:
            raise StorageError(exc if isinstance(exc, Exception) else RuntimeError(exc)) from exc
        return bool(acquired)

    async def reserve(self, rule: str, *key: str, detail: str = DEFAULT_DETAIL) -> None:
        """Count one attempt atomically before doing the work (fixed window, refundable with
        `refund`); raise RateLimited when the attempt is past the limit."""
        item = _rule(rule)
        backend = self._backend()
        try:
            allowed = await backend.fixed.hit(item, *key)
        except StorageError as exc:
            backend = self._fall_back(exc)
            allowed = await backend.fixed.hit(item, *key)
        if not allowed:
            stats = await backend.fixed.get_window_stats(item, *key)
            raise RateLimited(detail, retry_after=math.ceil(stats.reset_time - time.time()))

    async def refund(self, rule: str, *key: str) -> None:
        """Give back one attempt counted by `reserve` (it turned out not to count, e.g. a success)."""
        item = _rule(rule)
        backend = self._backend()
        try:
            await backend.storage.incr(item.key_for(*key), item.get_expiry(), amount=-1)
        except StorageError as exc:
            self._fall_back(exc)

    def _backend(self) -> _Backend:
        return self._memory if time.monotonic() < self._redis_down_until else self._redis

    def _fall_back(self, exc: StorageError) -> _Backend:
        log.warning("ratelimit.redis_unavailable", error=repr(exc.storage_error))
        metrics.REDIS_FALLBACKS.labels("ratelimit").inc()
        self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER
        return self._memory
