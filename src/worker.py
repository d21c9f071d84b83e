"""Composition root of a worker process: `dramatiq src.worker:setup`.

Importing this module builds nothing (no settings read, no thread, no client). The Dramatiq
CLI calls `setup()` in each worker process before it boots: settings, logging, the broker,
then the actors (the broker before any actor). The periodic scheduler and the modules' worker
loops (src/infra/loops.py) start from middlewares' `after_worker_boot` hooks and stop before
shutdown; database and Redis clients are built lazily inside the worker's event loop, on the
first task or loop round. Socket emits leave in one Redis pipeline per event-loop turn. With
`WORKER_METRICS_PORT` set, Dramatiq's Prometheus middleware serves the workers' metrics.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import dramatiq
from dramatiq.middleware import AsyncIO

from src.bootstrap import MODULES, build_context
from src.infra.bulk_queue import BulkConsumer
from src.infra.bus import WORKER_LISTENER_TASK
from src.infra.config import Settings, get_settings
from src.infra.context import AppContext
from src.infra.housekeeping import prune_outbox_task
from src.infra.logging import configure_logging
from src.infra.loops import LoopsMiddleware, WorkerLoop
from src.infra.periodic import PeriodicMiddleware
from src.infra.redis_acks import GroupAckRedisBroker
from src.infra.tasks import TaskSpec, create_broker
from src.infra.thread_batch import ThreadBatcher
from src.socket.emitter import SocketRealtime
from src.socket.pipelined_publisher import PipelinedRedisManager


class _Process:
    """What `setup` built in this worker process."""

    settings: Settings | None = None
    ctx: AppContext | None = None


def specs() -> list[TaskSpec]:
    """Every kind of background work: infra's and each module's."""
    return [prune_outbox_task, WORKER_LISTENER_TASK, *(spec for module in MODULES for spec in module.tasks)]


def loops() -> list[WorkerLoop]:
    """Every module's worker loops (polling rounds, e.g. due notification windows), and the bulk
    lane of each spec that has one (src/infra/bulk_queue.py), run by workers serving its queue."""
    max_jobs = (_Process.settings or get_settings()).worker_bulk_max_jobs
    bulk = [WorkerLoop(name=f"{spec.name}.bulk", queue=spec.queue,
                       round=BulkConsumer(spec, _broker, max_jobs=max_jobs).round)
            for spec in specs() if spec.bulk_queue is not None and spec.batch_fn is not None]
    return [*(loop for module in MODULES for loop in module.loops), *bulk]


def _broker() -> GroupAckRedisBroker:
    broker = dramatiq.get_broker()
    assert isinstance(broker, GroupAckRedisBroker)
    return broker


def _context() -> AppContext:
    if _Process.ctx is None:
        settings = _Process.settings or get_settings()
        manager = PipelinedRedisManager(settings.redis_url)  # a batch's emits in one round trip
        _Process.ctx = build_context(settings, lambda redis: SocketRealtime(manager.emit, redis))
        for module in MODULES:  # queries and listeners, so actors can ask and publish
            module.build(_Process.ctx)
    return _Process.ctx


def _actor(broker: dramatiq.Broker, spec: TaskSpec) -> dramatiq.Actor[Any, Any]:
    async def run(**kwargs: Any) -> None:
        await spec.fn(_context(), **kwargs)

    if spec.batch_fn is not None:  # a plain function: runs on the worker thread, waits for its batch
        return ThreadBatcher.actor(broker, spec, _context)

    run.__name__ = spec.name.replace(".", "_")
    decorate = dramatiq.actor(actor_name=spec.name, queue_name=spec.queue, broker=broker,
                              max_retries=spec.max_retries, min_backoff=spec.min_backoff_ms,
                              max_backoff=spec.max_backoff_ms, time_limit=spec.time_limit_ms)
    return decorate(run)


def setup() -> None:
    """Build this worker process's broker and actors (called by the Dramatiq CLI)."""
    settings = _Process.settings = get_settings()
    configure_logging(settings.log_level)
    broker = create_broker(settings.redis_url, namespace=settings.broker_namespace)
    all_specs = specs()
    broker.add_middleware(PeriodicMiddleware(settings.redis_url, all_specs))
    # Before AsyncIO: its shutdown hook stops the event loop the worker loops run on.
    broker.add_middleware(LoopsMiddleware(loops(), _context), before=AsyncIO)
    if settings.worker_metrics_port:
        from dramatiq.middleware.prometheus import Prometheus  # reads its dramatiq_prom_* env at import

        broker.add_middleware(Prometheus())
    dramatiq.set_broker(broker)
    for spec in all_specs:
        if spec.batch_fn is not None and settings.worker_batches_running:
            spec = dataclasses.replace(spec, batches_running=settings.worker_batches_running)
        _actor(broker, spec)
