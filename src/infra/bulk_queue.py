"""A bulk lane for small, frequent jobs: taken from Redis many at a time by the worker's event loop.

Through Dramatiq every message costs its consumer thread (fetch, decode, the work queue), a worker
thread (middleware, the actor, the hand-off to the loop and back: src/infra/thread_batch.py) and
an ack: more CPU than a push itself. A spec with `bulk_queue` is enqueued there when it has no
delay (delayed ones go to `spec.queue`, where Dramatiq's delay queue holds them); every worker
process serving `spec.queue` runs a `BulkConsumer` round after round on its event loop (a
`WorkerLoop`): one Lua `fetch` of up to `max_jobs` messages, one `batch_fn(ctx, [kwargs, …])`,
one script call acking them all. The messages stay Dramatiq's, in its own Redis layout, fetched and acked
with its own `dispatch` script under this process's broker id: a message fetched by a process
that dies is moved back to the queue by Dramatiq's maintenance once that id's heartbeat is old;
one fetched before a shutdown is put back at once. A failed batch hands each of its jobs to
Dramatiq on `spec.queue` with its retry count raised and Dramatiq's backoff (Dramatiq retries
it from there and dead-letters it in the end), or dead-letters it at once past `max_retries`;
if Redis fails meanwhile, the round fails (logged, retried in a second) and those messages wait,
fetched, until the process dies (then maintenance puts them back). Jobs must be idempotent.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions
import structlog
from dramatiq import Message
from dramatiq.common import compute_backoff, current_millis

from src.infra.redis_acks import GroupAckRedisBroker
from src.infra.tasks import TaskSpec

log = structlog.get_logger("chatty.bulk_queue")
_decode = msgspec.json.Decoder(dict[str, Any]).decode
# Dramatiq's `ack` (dispatch.lua) for many ids: data deleted only for ids still in the fetched
# set (maintenance may have moved them back to the queue, for another worker to run).
_ACK_MANY = """
for i = 1, #ARGV do
    if redis.call("srem", KEYS[1], ARGV[i]) > 0 then redis.call("hdel", KEYS[2], ARGV[i]) end
end
"""
_ACK_MANY_SHA = hashlib.sha1(_ACK_MANY.encode()).hexdigest()
# After a full batch the next round starts at once; after a partial one, GATHER_S later (a trickle
# of jobs gathers into batches instead of a fetch and a batch per job); an empty queue is polled
# again after 10, 20, 40 … 100 ms (every poll is a script call, in Redis and here).
GATHER_S, IDLE_MIN_S, IDLE_MAX_S = 0.005, 0.01, 0.1


class BulkConsumer:
    """`round(ctx)`: one fetch, batch and ack of `spec.bulk_queue`; returns the pause before the next."""

    def __init__(self, spec: TaskSpec, broker: Callable[[], GroupAckRedisBroker], *, max_jobs: int = 64) -> None:
        assert spec.bulk_queue is not None and spec.batch_fn is not None
        self._spec, self._queue, self._batch_fn = spec, spec.bulk_queue, spec.batch_fn
        self._broker_of = broker
        self._max = max_jobs
        self._redis: aioredis.Redis | None = None
        self._idle = 0

    async def round(self, ctx: Any) -> float:
        """Run the jobs waiting (up to `max_jobs`) as one batch; the pause before the next round."""
        broker = self._broker_of()
        if self._redis is None:  # this process's own asyncio client: the loop's, not the broker's
            self._redis = aioredis.Redis.from_url(ctx.settings.redis_url)
        datas = await self._dispatch(broker, "fetch", self._max)
        if not datas:
            self._idle = min(self._idle + 1, 8)
            return min(IDLE_MIN_S * 2 ** (self._idle - 1), IDLE_MAX_S)
        self._idle = 0
        pause = 0.0 if len(datas) >= self._max else GATHER_S
        # Dramatiq's message dicts, decoded by msgspec (Message.decode: the stdlib's json and a dataclass)
        messages: list[dict[str, Any]] = [_decode(data) for data in datas if data is not None]
        redis_ids = [m["options"]["redis_message_id"] for m in messages]
        try:
            async with asyncio.timeout(self._spec.time_limit_ms / 1000):
                await self._batch_fn(ctx, [m["kwargs"] for m in messages])
        except asyncio.CancelledError:  # shutdown: not run (or not to the end); back on the queue
            broker.do_requeue(self._queue, *redis_ids)
            raise
        except Exception as exc:
            log.warning("bulk_queue.batch_failed", queue=self._queue, jobs=len(messages), error=repr(exc))
            self._hand_over(broker, [Message(**m) for m in messages])
        else:
            await self._ack(broker, redis_ids)
        return pause

    def _hand_over(self, broker: GroupAckRedisBroker, messages: list[Message[Any]]) -> None:
        """Each job of a failed batch to Dramatiq's own queue, one retry used (dead-lettered past the last)."""
        spec = self._spec
        for message in messages:
            retries = message.options.get("retries", 0) + 1
            redis_id = message.options["redis_message_id"]
            if retries > message.options.get("max_retries", spec.max_retries):
                broker.do_nack(self._queue, redis_id)
                continue
            _, delay = compute_backoff(retries, factor=message.options.get("min_backoff", spec.min_backoff_ms),
                                       max_backoff=message.options.get("max_backoff", spec.max_backoff_ms))
            options = {k: v for k, v in message.options.items() if k != "redis_message_id"}
            broker.enqueue(message.copy(queue_name=spec.queue, options={**options, "retries": retries}),
                           delay=delay)
            broker.do_ack(self._queue, redis_id)

    async def _dispatch(self, broker: GroupAckRedisBroker, command: str, *args: Any) -> Any:
        """Dramatiq's `dispatch` script, as `broker.do_<command>` calls it, on the asyncio client."""
        script = broker.scripts["dispatch"]
        return await self._script(script.sha, script.script, [broker.namespace], [
            command, current_millis(), self._queue, broker.broker_id, broker.heartbeat_timeout,
            broker.dead_message_ttl, broker._should_do_maintenance(command), broker._max_unpack_size(), *args])

    async def _ack(self, broker: GroupAckRedisBroker, redis_ids: list[str]) -> None:
        """Dramatiq's `ack` of every id (out of this process's fetched set, then its data gone), in one call."""
        await self._script(_ACK_MANY_SHA, _ACK_MANY, [
            f"{broker.namespace}:__acks__.{broker.broker_id}.{self._queue}",
            f"{broker.namespace}:{self._queue}.msgs"], redis_ids)

    async def _script(self, sha: str, text: Any, keys: list[str], args: list[Any]) -> Any:
        assert self._redis is not None
        try:
            return await self._redis.evalsha(sha, len(keys), *keys, *args)  # type: ignore[misc]
        except redis.exceptions.NoScriptError:  # not loaded yet, or Redis lost its scripts (restarted)
            await self._redis.script_load(text)
            return await self._redis.evalsha(sha, len(keys), *keys, *args)  # type: ignore[misc]
