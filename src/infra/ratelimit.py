"""Rate limits (the `limits` library): counters in Redis, in-process counters while Redis is down.

Rules are strings in the `limits` notation ("5/15minutes"); keys name who is counted. The
moving-window hits of concurrent callers (every send, every write) go to Redis together: one
pipeline of `limits`' own Lua script per batch (`_MovingWindowHits`), the same key and arguments
as `limits` would send one round trip at a time (limits' call path cost ~100 µs of CPU per hit on
top of the round trip, and each hit took its own pooled connection: bench/README.md). When Redis
does not answer, this process counts on its own (`MemoryStorage`) for a few seconds before trying
Redis again: limits then hold per process instead of across processes, which still stops a flood,
and a request never fails or stalls because the counter store is away.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any, cast

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from limits.errors import StorageError
from redis.exceptions import NoScriptError

from src.common.errors import RateLimited
from src.infra import metrics
from src.infra.coalesce import Coalescer
from src.infra.redis import REDIS_ERRORS

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


@dataclass
class _Hit:
    key: str
    limit: int
    expiry: int
    allowed: bool = False


class _MovingWindowHits:
    """`MovingWindowRateLimiter.hit` on a `RedisStorage` for concurrent callers, one pipeline per batch."""

    def __init__(self, storage: RedisStorage) -> None:
        self._storage = storage
        self._batches: Coalescer[_Hit] = Coalescer(self._send)

    async def hit(self, item: RateLimitItem, *key: str) -> bool:
        """Count one hit if the window has room (raises StorageError when Redis fails)."""
        hit = _Hit(item.key_for(*key), item.amount, item.get_expiry())
        await self._batches.submit([hit])
        return hit.allowed

    async def _send(self, hits: list[_Hit]) -> None:
        bridge: Any = self._storage.bridge  # limits' redis-py bridge: its client and registered scripts
        script = bridge.lua_acquire_moving_window
        todo = hits
        try:
            for attempt in (1, 2):
                async with bridge.get_connection().pipeline(transaction=False) as pipe:
                    now = time.time()
                    for h in todo:
                        pipe.evalsha(script.sha, 1, bridge.prefixed_key(h.key), now, h.limit, h.expiry, 1)
                    results = await pipe.execute(raise_on_error=False)
                unknown = []
                for h, result in zip(todo, results, strict=True):
                    if isinstance(result, NoScriptError) and attempt == 1:
                        unknown.append(h)  # Redis lost its scripts (restarted): load it, run those again
                    elif isinstance(result, Exception):
                        raise StorageError(result)
                    else:
                        h.allowed = bool(result)
                if not unknown:
                    return
                await bridge.get_connection().script_load(script.script)
                todo = unknown
        except REDIS_ERRORS as exc:
            raise StorageError(cast(Exception, exc)) from exc


class RateLimiter:
    """Counts attempts per rule and key; raises RateLimited (429, Retry-After) past a limit."""

    def __init__(self, redis_url: str) -> None:
        self._redis = _Backend(RedisStorage(
            redis_url, implementation="redispy", key_prefix="rl", wrap_exceptions=True,
            socket_connect_timeout=0.5, socket_timeout=1.0, health_check_interval=15))
        self._memory = _Backend(MemoryStorage())
        self._redis_hits = _MovingWindowHits(self._redis.storage)  # type: ignore[arg-type]
        self._redis_down_until = 0.0

    async def hit(self, rule: str, *key: str, detail: str = DEFAULT_DETAIL) -> None:
        """Count one attempt (moving window); raise RateLimited past the limit."""
        item = _rule(rule)
        backend = self._backend()
        try:
            allowed = await (self._redis_hits.hit(item, *key) if backend is self._redis
                             else backend.moving.hit(item, *key))
        except StorageError as exc:
            backend = self._fall_back(exc)
            allowed = await backend.moving.hit(item, *key)
        if not allowed:
            stats = await backend.moving.get_window_stats(item, *key)
            raise RateLimited(detail, retry_after=math.ceil(stats.reset_time - time.time()))

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
