"""Background tasks (Dramatiq): specs declared by modules, enqueued by name from the API.

API processes never run actors; they only enqueue. `src.worker` turns specs into actors.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
import uvloop
from dramatiq.asyncio import EventLoopThread, set_event_loop_thread
from dramatiq.middleware import AsyncIO, Retries, TimeLimit

from src.infra.redis_acks import GroupAckRedisBroker


@dataclass(frozen=True)
class TaskSpec:
    """A kind of background work: `fn(ctx, **kwargs)`, idempotent, retried with backoff."""

    name: str
    queue: str
    fn: Callable[..., Awaitable[None]]
    max_retries: int = 8
    min_backoff_ms: int = 1_000
    max_backoff_ms: int = 300_000
    time_limit_ms: int = 60_000
    every_seconds: int | None = None  # run periodically (once per period across all workers)
    # Small, frequent jobs: the worker runs those waiting together as `batch_fn(ctx, [kwargs, …])`
    # on its event loop (src/infra/thread_batch.py) instead of `fn` once per job; one broker
    # message per job all the same (each acked, retried, dead-lettered on its own).
    batch_fn: Callable[..., Awaitable[None]] | None = None
    batches_running: int = 1  # batches of `batch_fn` side by side (it must allow that)
    # With `batch_fn`: jobs enqueued without a delay go to this queue instead, taken many per fetch
    # by the worker's event loop (src/infra/bulk_queue.py); `queue` keeps the delayed and retried.
    bulk_queue: str | None = None


# A task's arguments are ids: anything named like a secret is refused before it reaches the
# broker (where retries and dead letters would keep it, and Dramatiq would log it).
_SECRET_NAMES = re.compile(r"pass|token|secret|authorization|url|signature|key$", re.IGNORECASE)


class UvloopAsyncIO(AsyncIO):
    """Dramatiq's AsyncIO middleware whose event loop thread runs uvloop: a worker's actors are
    network-bound (FCM, PostgreSQL, Redis), and uvloop's transports and scheduling cost about
    half of asyncio's pure-Python selector loop per request."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = EventLoopThread(self.logger)
        thread.loop.close()
        thread.loop = uvloop.new_event_loop()
        thread.start(timeout=1.0)
        set_event_loop_thread(thread)


def create_broker(redis_url: str, namespace: str = "dramatiq") -> GroupAckRedisBroker:
    """The Redis broker with retries (exponential backoff, bounded) and asyncio actors.

    A message that exhausts its retries goes to the broker's dead-letter queue. Its Redis keys
    start with `namespace`. A worker's acks leave in pipelined groups (src/infra/redis_acks.py).
    """
    broker = GroupAckRedisBroker(url=redis_url, namespace=namespace, middleware=[])
    broker.add_middleware(UvloopAsyncIO())
    broker.add_middleware(TimeLimit())
    broker.add_middleware(Retries(max_retries=8, min_backoff=1_000, max_backoff=300_000))
    return broker


class TaskQueue:
    """Enqueue tasks by spec, without importing the actor (the worker owns actors)."""

    def __init__(self, broker: dramatiq.Broker, *, bulk: bool = True) -> None:
        self._broker = broker
        self._bulk = bulk  # False: every job on `spec.queue` (Dramatiq's path alone; benches compare)

    def enqueue(self, spec: TaskSpec, *, delay_ms: int | None = None, **kwargs: Any) -> None:
        """Put one run of `spec` on its queue, not before `delay_ms` from now when given
        (ids, never a secret: see `_SECRET_NAMES`)."""
        if secret := [name for name in kwargs if _SECRET_NAMES.search(name)]:
            raise ValueError(f"task {spec.name} must not carry secrets in the broker: {secret}")
        queue = spec.bulk_queue if spec.bulk_queue and self._bulk and not delay_ms else spec.queue
        self._broker.declare_queue(queue)
        self._broker.enqueue(dramatiq.Message(
            queue_name=queue, actor_name=spec.name, args=(), kwargs=kwargs,
            options={"max_retries": spec.max_retries, "min_backoff": spec.min_backoff_ms,
                     "max_backoff": spec.max_backoff_ms, "time_limit": spec.time_limit_ms},
        ), delay=delay_ms or None)

    def enqueue_in(self, spec: TaskSpec, delay_ms: int, **kwargs: Any) -> None:
        """Put one run of `spec` on its queue, to run no sooner than `delay_ms` from now."""
        self.enqueue(spec, delay_ms=delay_ms, **kwargs)
