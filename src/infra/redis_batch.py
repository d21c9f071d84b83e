"""Redis commands of concurrent callers written together: one pipeline per batch, not a round trip each.

redis-py takes a pooled connection per command and pays its per-command overhead each time; with a
few hundred sends in flight an API process kept hundreds of connections and spent a good part of
its time in redis-py (bench/messaging.py). A `PipelineBatcher` queues what callers want written;
one task writes what was queued while the previous batch was on the wire (at least everything
queued in the same event-loop tick) as one pipeline, and each caller's wait ends with its batch.
For writes whose loss only costs a cache miss or an at-most-once delivery: a batch that fails twice
is logged and dropped, and no caller sees an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import Redis

log = structlog.get_logger("chatty.redis")
MAX_BATCH = 500  # callers per pipeline
Fill = Callable[[Any], None]  # adds commands to a pipeline


class PipelineBatcher:
    """Runs callers' commands in shared pipelines (no transaction); `run` returns once they were sent."""

    def __init__(self, redis: Callable[[], Redis], name: str) -> None:
        self._redis = redis  # the current client (its owner may reconnect)
        self._name = name
        self._queued: list[tuple[Fill, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def run(self, fill: Fill) -> None:
        """Queue `fill(pipeline)`; return when its batch was written (or given up)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queued.append((fill, done))
        if self._writer is None:
            self._writer = loop.create_task(self._write(), name=f"redis-batch-{self._name}")
        await asyncio.shield(done)

    async def _write(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued[:MAX_BATCH], self._queued[MAX_BATCH:]
                try:
                    await self._send([fill for fill, _ in batch])
                finally:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._writer = None
            if self._queued:  # cancelled mid-way (shutdown): release the waiters
                for _, done in self._queued:
                    if not done.done():
                        done.set_result(None)
                self._queued = []

    async def _send(self, fills: list[Fill]) -> None:
        for attempt in (1, 2):  # as python-socketio's publish: two attempts, then give up
            try:
                async with self._redis().pipeline(transaction=False) as pipe:
                    for fill in fills:
                        fill(pipe)
                    await pipe.execute(raise_on_error=False)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("redis.batch_failed", batch=self._name, attempt=attempt, callers=len(fills),
                            error=repr(exc))
