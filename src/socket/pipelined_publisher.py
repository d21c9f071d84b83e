"""A write-only Redis manager (worker processes) whose publishes leave in one pipeline per turn.

A worker that notifies a batch of users emits one `notification:new` per user: with the stock
manager each emit is its own Redis round trip (most of a batch's CPU). Here `_publish` (the
method python-socketio's pub/sub managers leave to their subclasses) only queues the encoded
message; a task started on the first one sends everything queued during that event-loop turn
in one pipeline, in order. Emits are at most once by design (clients catch up through /sync):
a pipeline that fails twice (the second time on a new client) is logged and dropped, as the
stock manager's publish is.

`emit` also skips what a write-only process never needs: the walk looking for binary data
(the realtime layer sends `msgspec.to_builtins` output: JSON values only) and the delivery to
local sockets (it has none). The message is the one `AsyncPubSubManager.emit` publishes
(python-socketio 5, pinned below 6 in pyproject.toml; the API processes decode it).
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

    async def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None,
                   skip_sid: Any = None, callback: Any = None, to: Any = None, **kwargs: Any) -> None:
        if callback is not None or kwargs.get("ignore_queue"):
            await super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid, callback=callback,
                               to=to, **kwargs)
            return
        args = list(data) if isinstance(data, tuple) else [data]
        await self._publish({"method": "emit", "event": event, "data": args, "binary": False,
                             "namespace": namespace or "/", "room": to or room, "skip_sid": skip_sid,
                             "callback": None, "host_id": self.host_id})

    async def _publish(self, data: Any) -> None:
        self._queued.append(self.json.dumps(data))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        try:
            await asyncio.sleep(0)  # the emits of this turn join the batch
            while self._queued:
                batch, self._queued = self._queued, []
                await self._send_batch(batch)
        finally:
            self._sender = None

    async def _send_batch(self, batch: list[str]) -> None:
        # Twice at most, on a fresh client the second time (as the stock `_publish`): a Redis that
        # restarted leaves dead connections in the pool, and the first write on one fails.
        for attempt in (1, 2):
            try:
                if not self.connected:
                    self._redis_connect()
                async with self.redis.pipeline(transaction=False) as pipe:
                    for message in batch:
                        pipe.publish(self.channel, message)
                    await pipe.execute()
                return
            except Exception as exc:  # at most once, like a failed emit
                self.connected = False
                if attempt == 2:
                    log.warning("socket.publish_failed", messages=len(batch), error=repr(exc))
