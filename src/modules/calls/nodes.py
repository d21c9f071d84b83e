"""Which API processes are alive: each one holding call sockets keeps `calls:node:{id}` fresh.

A process killed outright never runs its socket disconnect hooks, so a participant joined through
it would look connected forever. Its key expiring tells the others: that participant may resume
the call from another socket, and signals to it are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from redis.asyncio import Redis

from src.common.ids import new_id
from src.infra.redis import REDIS_ERRORS

log = structlog.get_logger("chatty.calls")
BEAT_SECONDS = 2.0
TTL_SECONDS = 6


def node_key(node: str) -> str:
    return f"calls:node:{node}"


class NodeHeartbeat:
    """This process's id and the task that keeps its key alive (started with its first socket)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.id = new_id().hex
        self._task: asyncio.Task[None] | None = None
        self._seen: dict[str, float] = {}  # node → when it was last seen alive (monotonic)

    def ensure_running(self) -> None:
        """Start beating (idempotent; call from the API process's event loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._beat(), name="calls-node-heartbeat")

    async def _beat(self) -> None:
        while True:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._redis.set(node_key(self.id), "1", ex=TTL_SECONDS)
            await asyncio.sleep(BEAT_SECONDS)

    async def alive(self, node: str | None) -> bool:
        """Whether process `node` still beats (unknown → alive: never wrongly take a call away)."""
        if node is None or node == self.id or time.monotonic() - self._seen.get(node, -60.0) < BEAT_SECONDS / 2:
            return True
        try:
            if await self._redis.exists(node_key(node)):
                if len(self._seen) > 1000:
                    self._seen.clear()
                self._seen[node] = time.monotonic()
                return True
            return False
        except REDIS_ERRORS as exc:
            log.warning("calls.node_check_failed", error=repr(exc))
            return True
