"""Redis commands of concurrent callers written together: one pipeline per batch, not a round trip each.

redis-py takes a pooled connection per command and pays its per-command overhead each time; with a
few hundred sends in flight an API process kept hundreds of connections and spent a good part of
its time in redis-py (bench/messaging.py). A `PipelineBatcher` hands what callers want written to a
`Coalescer` (coalesce.py): what was queued while the previous batch was on the wire (at least
everything queued in the same event-loop tick) goes as one pipeline, and each caller's wait ends
with its batch.
For writes whose loss only costs a cache miss or an at-most-once delivery: a batch that fails twice
is logged and dropped, and no caller sees an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import Redis

from src.infra.coalesce import Coalescer

log = structlog.get_logger("chatty.redis")
MAX_BATCH = 500  # callers per pipeline
Fill = Callable[[Any], None]  # adds commands to a pipeline


class PipelineBatcher:
    """Runs callers' commands in shared pipelines (no transaction); `run` returns once they were sent."""

    def __init__(self, redis: Callable[[], Redis], name: str,
                 on_results: Callable[[list[Any]], None] | None = None) -> None:
        self._redis = redis  # the current client (its owner may reconnect)
        self._name = name
        self._on_results = on_results  # told each written batch's replies (errors included), in order
        self._batches: Coalescer[Fill] = Coalescer(self._send, max_batch=MAX_BATCH)

    async def run(self, fill: Fill) -> None:
        """Queue `fill(pipeline)`; return when its batch was written (or given up)."""
        await self._batches.submit([fill])

    async def _send(self, fills: list[Fill]) -> None:
        for attempt in (1, 2):  # as python-socketio's publish: two attempts, then give up
            try:
                async with self._redis().pipeline(transaction=False) as pipe:
                    for fill in fills:
                        fill(pipe)
                    results = await pipe.execute(raise_on_error=False)
                if self._on_results is not None:
                    self._on_results(results)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("redis.batch_failed", batch=self._name, attempt=attempt, callers=len(fills),
                            error=repr(exc))
