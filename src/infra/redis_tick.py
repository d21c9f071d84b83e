"""Redis commands issued in the same event-loop turn, sent as one pipeline (one round trip).

A 1:1 send asks Redis two things before its insert: the sender's rate limit (`limits`' moving-window
script) and privacy's cached verdict (an MGET), issued side by side. Each on its own costs a pooled
connection, a write and a read wake-up. Here what callers issue before the loop's next turn goes as
one pipeline on one connection. Unlike `PipelineBatcher` (redis_batch.py), a batch never waits for
the previous one: pipelines of different turns run concurrently, so no caller waits behind another
caller's round trip (the third pass's `Coalescer`-batched rate limit did, and was reverted).
Each caller gets its own command's reply or error; a failed round trip fails every caller in it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

Fill = Callable[[Any], None]  # adds ONE command to a pipeline

_BY_CLIENT: weakref.WeakKeyDictionary[Redis, TickPipeline] = weakref.WeakKeyDictionary()


class TickPipeline:
    """Sends the commands queued during one event-loop turn as one pipeline (no transaction)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queued: list[tuple[Fill, asyncio.Future[Any]]] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def call(self, fill: Fill) -> Any:
        """Queue `fill(pipeline)` (one command) for this turn's pipeline; its reply (or raise its error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._queued is None:
            self._queued = []
            loop.call_soon(self._flush)
        self._queued.append((fill, future))
        return await future

    def _flush(self) -> None:
        batch, self._queued = self._queued or [], None
        task = asyncio.ensure_future(self._send(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _send(self, batch: list[tuple[Fill, asyncio.Future[Any]]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for fill, _ in batch:
                    fill(pipe)
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


def tick_pipeline(redis: Redis) -> TickPipeline:
    """The one `TickPipeline` of this Redis client (callers on the same client share its batches)."""
    found = _BY_CLIENT.get(redis)
    if found is None:
        found = _BY_CLIENT[redis] = TickPipeline(redis)
    return found
