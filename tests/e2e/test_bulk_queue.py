"""The bulk lane (src/infra/bulk_queue.py): undelayed jobs of a spec with `bulk_queue` are taken
many per fetch and run as one batch, then acked; a failed batch hands each job to Dramatiq's own
queue with one retry used (dead-lettered past the last); delayed jobs stay on Dramatiq's queue."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace
from typing import Any

import redis

from src.infra.bulk_queue import BulkConsumer
from src.infra.redis_acks import GroupAckRedisBroker
from src.infra.tasks import TaskQueue, TaskSpec, create_broker


async def _nothing(ctx: Any, **job: Any) -> None:
    return None


class _Lane:
    """A broker of its own namespace, a spec with a bulk queue and a batch function that records."""

    def __init__(self, redis_url: str, *, fail: bool = False, max_retries: int = 3) -> None:
        self.namespace = f"bulk-{uuid.uuid4().hex[:8]}"
        self.broker: GroupAckRedisBroker = create_broker(redis_url, namespace=self.namespace)
        self.batches: list[list[dict[str, Any]]] = []
        self.fail = fail

        async def batch(ctx: Any, jobs: list[dict[str, Any]]) -> None:
            self.batches.append(jobs)
            if self.fail:
                raise RuntimeError("batch failed")

        self.spec = TaskSpec(name="t.bulk", queue="q", fn=_nothing, batch_fn=batch, bulk_queue="q_bulk",
                             max_retries=max_retries, min_backoff_ms=100, max_backoff_ms=200)
        self.tasks = TaskQueue(self.broker)
        self.consumer = BulkConsumer(self.spec, lambda: self.broker, max_jobs=50)
        self.ctx = SimpleNamespace(settings=SimpleNamespace(redis_url=redis_url))
        self.client = redis.Redis.from_url(redis_url)

    def key(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    def unacked(self) -> int:
        return sum(self.client.scard(k) for k in self.client.scan_iter(self.key("__acks__.*")))

    def close(self) -> None:
        keys = list(self.client.scan_iter(self.key("*")))
        if keys:
            self.client.delete(*keys)
        self.client.close()


async def test_waiting_jobs_run_as_batches_and_are_acked(redis_url: str) -> None:
    lane = _Lane(redis_url)
    try:
        for i in range(120):
            lane.tasks.enqueue(lane.spec, i=i)
        assert lane.client.llen(lane.key("q_bulk")) == 120 and lane.client.llen(lane.key("q")) == 0
        pauses = [await lane.consumer.round(lane.ctx)]
        lane.client.script_flush()  # Redis lost its scripts (restarted): loaded again
        pauses += [await lane.consumer.round(lane.ctx) for _ in range(2)]
        assert pauses[:2] == [0.0, 0.0] and 0 < pauses[2] < 0.1  # two full batches, then a partial one
        assert [len(b) for b in lane.batches] == [50, 50, 20]
        assert sorted(job["i"] for b in lane.batches for job in b) == list(range(120))
        assert lane.client.hlen(lane.key("q_bulk.msgs")) == 0 and lane.unacked() == 0
        assert await lane.consumer.round(lane.ctx) > 0  # nothing waiting: a pause
    finally:
        lane.close()


async def test_delayed_jobs_stay_on_dramatiqs_queue(redis_url: str) -> None:
    lane = _Lane(redis_url)
    try:
        lane.tasks.enqueue(lane.spec, delay_ms=60_000, i=1)
        TaskQueue(lane.broker, bulk=False).enqueue(lane.spec, i=2)
        assert lane.client.llen(lane.key("q_bulk")) == 0
        assert lane.client.llen(lane.key("q.DQ")) == 1 and lane.client.llen(lane.key("q")) == 1
    finally:
        lane.close()


async def test_a_failed_batch_hands_each_job_to_dramatiq_with_a_retry_used(redis_url: str) -> None:
    lane = _Lane(redis_url, fail=True)
    try:
        lane.tasks.enqueue(lane.spec, i=1)
        lane.tasks.enqueue(lane.spec, i=2)
        await lane.consumer.round(lane.ctx)
        assert lane.client.hlen(lane.key("q_bulk.msgs")) == 0 and lane.unacked() == 0
        delayed = [json.loads(v) for v in lane.client.hvals(lane.key("q.DQ.msgs"))]
        assert sorted(m["kwargs"]["i"] for m in delayed) == [1, 2]
        assert {m["options"]["retries"] for m in delayed} == {1}
        assert {m["actor_name"] for m in delayed} == {"t.bulk"}
    finally:
        lane.close()


async def test_a_job_past_its_last_retry_is_dead_lettered(redis_url: str) -> None:
    lane = _Lane(redis_url, fail=True, max_retries=0)
    try:
        lane.tasks.enqueue(lane.spec, i=1)
        await lane.consumer.round(lane.ctx)
        assert lane.client.zcard(lane.key("q_bulk.XQ")) == 1
        assert lane.client.llen(lane.key("q.DQ")) == 0 and lane.unacked() == 0
    finally:
        lane.close()
