"""Small Redis writes that must not be lost, sent in order, many per pipeline, retried until written.

The socket lifecycle hooks (a socket connecting or leaving: `notifications:sockets:{user}` SADD /
EXPIRE / SREM) each took a pooled connection and a round trip, awaited on the socket's path. When
2,000 sockets closed together, the hooks waited longer than the pool's `POOL_WAIT_SECONDS` for a
connection and failed with `ConnectionError`, and their state was lost (hundreds of log lines).
Here a write is only appended to a list (the caller does not wait); one task writes what was queued
during `window` seconds as one pipeline (at most MAX_BATCH writes), on ONE connection, in the order
written, and whatever is queued meanwhile goes in the next pipeline. A pipeline that fails (Redis away, a timeout) is
sent again, after a short back-off, before anything queued after it, for up to `give_up_after`
seconds; so a storm of disconnects costs a few round trips and loses nothing. Writes must be
idempotent (a pipeline that timed out after Redis applied it is applied again).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import Redis

log = structlog.get_logger("chatty.redis")
Fill = Callable[[Any], None]  # adds commands to a pipeline
MAX_BATCH = 1000  # writes per pipeline
MAX_PENDING = 200_000  # queued writes kept while Redis is away; past it the oldest are dropped (logged)
GIVE_UP_SECONDS = 60.0
BACKOFF_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0)

_BY_CLIENT: weakref.WeakKeyDictionary[Redis, OrderedWrites] = weakref.WeakKeyDictionary()


class OrderedWrites:
    """Queues writes (`write`) and sends them in order, one pipeline at a time (see the module doc)."""

    def __init__(self, redis: Redis, *, window: float = 0.0, give_up_after: float = GIVE_UP_SECONDS) -> None:
        self._redis, self._window, self._give_up_after = redis, window, give_up_after
        self._pending: list[Fill] = []
        self._task: asyncio.Task[None] | None = None
        self.failed_batches = 0  # pipelines sent again after an error (for tests and logs)

    def write(self, fill: Fill) -> None:
        """Queue `fill(pipeline)`; it is sent after everything queued before it (the caller does not wait)."""
        self._pending.append(fill)
        if len(self._pending) > MAX_PENDING:  # Redis away for long: memory stays bounded
            dropped = len(self._pending) - MAX_PENDING // 2
            del self._pending[:dropped]
            log.error("redis.ordered_writes_dropped", writes=dropped, error="too many queued")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="redis-ordered-writes")

    @property
    def pending(self) -> int:
        """Writes queued and not yet written."""
        return len(self._pending)

    async def flush(self, wait: float = 5.0) -> None:
        """Wait (up to `wait` s) until what is queued now is written (at shutdown, in tests)."""
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=wait)

    async def _drain(self) -> None:
        try:
            while self._pending:
                if self._window > 0:
                    await asyncio.sleep(self._window)
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._send(batch)
        finally:
            self._task = None

    async def _send(self, batch: list[Fill]) -> None:
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for fill in batch:
                        fill(pipe)
                    replies = await pipe.execute(raise_on_error=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed_batches += 1
                if time.monotonic() - started > self._give_up_after:
                    log.error("redis.ordered_writes_dropped", writes=len(batch), error=repr(exc))
                    return
                if attempt == 0:  # one line per failing batch, not one per attempt
                    log.warning("redis.ordered_writes_retrying", writes=len(batch), error=repr(exc))
                await asyncio.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)])
                attempt += 1
                continue
            errors = [reply for reply in replies if isinstance(reply, Exception)]
            if errors:  # a command Redis refused (a wrong type): sending it again would not help
                log.warning("redis.ordered_writes_refused", commands=len(errors), error=repr(errors[0]))
            return


def ordered_writes(redis: Redis, window: float = 0.0) -> OrderedWrites:
    """The one `OrderedWrites` of this Redis client (every module's hooks share its pipelines; the
    first caller's `window` holds)."""
    found = _BY_CLIENT.get(redis)
    if found is None:
        found = _BY_CLIENT[redis] = OrderedWrites(redis, window=window)
    return found
