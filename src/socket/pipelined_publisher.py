"""A write-only Redis manager (worker processes) whose publishes leave in one pipeline per turn.

A worker that notifies a batch of users emits one `notification:new` per user: with the stock
manager each emit is its own Redis round trip (most of a batch's CPU). Here `_publish` (the
method python-socketio's pub/sub managers leave to their subclasses) only queues the encoded
message; a task started on the first one sends everything queued during that event-loop turn
in one pipeline, in order. Emits are at most once by design (clients catch up through /sync):
a failed pipeline is logged, as a failed emit was.
"""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
import structlog

log = structlog.get_logger("chatty.socket")


class PipelinedRedisManager(socketio.AsyncRedisManager):
    """`AsyncRedisManager(url, write_only=True)` with batched publishes."""

    connected: bool  # the library's: whether `redis` is set up

    def __init__(self, url: str) -> None:
        super().__init__(url, write_only=True)
        self._queued: list[str] = []
        self._sender: asyncio.Task[None] | None = None

    async def _publish(self, data: Any) -> None:
        self._queued.append(self.json.dumps(data))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        try:
            await asyncio.sleep(0)  # the emits of this turn join the batch
            while self._queued:
                batch, self._queued = self._queued, []
                try:
                    if not self.connected:
                        self._redis_connect()
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for message in batch:
                            pipe.publish(self.channel, message)
                        await pipe.execute()
                except Exception as exc:  # at most once, like a failed emit
                    self.connected = False
                    log.warning("socket.publish_failed", messages=len(batch), error=repr(exc))
        finally:
            self._sender = None
