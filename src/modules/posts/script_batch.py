"""One Lua script's calls by concurrent callers, sent together: one pipeline per batch.

Each feed page runs one Redis script (feed_cache.py). Called one by one, redis-py's per-command path
(a pool checkout, retry and timeout wrappers, a write and a read per call) cost more of the API's
CPU than the script's reply; calls queued while a batch is on the wire go together in the next
one (group commit through `Coalescer`: the first caller starts a batch at once, no linger). Each
caller gets its own reply or error; a failure of the whole batch (Redis down) is every caller's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from src.infra.coalesce import Coalescer

MAX_BATCH = 64  # calls per pipeline


class _Call:
    __slots__ = ("args", "keys", "reply")

    def __init__(self, keys: list[str], args: list[Any], reply: asyncio.Future[Any]) -> None:
        self.keys, self.args, self.reply = keys, args, reply


class ScriptBatcher:
    """`await batcher(keys, args)`: the script's reply, as `redis.register_script(...)(keys, args)`."""

    def __init__(self, redis: Redis, script: str) -> None:
        self._redis, self._script = redis, script
        self._sha = redis.register_script(script).sha
        self._batches: Coalescer[_Call] = Coalescer(self._send, max_batch=MAX_BATCH)

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        call = _Call(keys, args, asyncio.get_running_loop().create_future())
        await self._batches.submit([call])
        return call.reply.result()

    async def _send(self, calls: list[_Call]) -> None:
        replies = await self._pipeline(calls)
        if any(isinstance(r, NoScriptError) for r in replies):  # Redis restarted or flushed its scripts
            await self._redis.script_load(self._script)
            replies = await self._pipeline(calls)
        for call, reply in zip(calls, replies, strict=True):
            if isinstance(reply, Exception):
                call.reply.set_exception(reply)
            else:
                call.reply.set_result(reply)

    async def _pipeline(self, calls: list[_Call]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.evalsha(self._sha, len(call.keys), *call.keys, *call.args)
            return list(await pipe.execute(raise_on_error=False))
