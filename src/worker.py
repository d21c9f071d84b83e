"""Composition root of a worker process: `dramatiq src.worker`.

Dramatiq imports this module in each worker process, so the broker and the actors are
declared here at import (the broker before any actor); database and Redis clients are
built lazily inside the worker's event loop, on the first task. Periodic tasks (outbox and
change-log housekeeping) are enqueued from here, once per period across all workers.
"""

from __future__ import annotations

from typing import Any

import dramatiq
import socketio

from src.bootstrap import MODULES, build_context
from src.infra.config import get_settings
from src.infra.context import AppContext
from src.infra.housekeeping import prune_outbox_task
from src.infra.logging import configure_logging
from src.infra.periodic import PeriodicScheduler
from src.infra.tasks import TaskQueue, TaskSpec, create_broker
from src.socket.emitter import SocketRealtime

settings = get_settings()
configure_logging(settings.log_level)
broker = create_broker(settings.redis_url)
dramatiq.set_broker(broker)
_ctx: AppContext | None = None


def _context() -> AppContext:
    global _ctx
    if _ctx is None:
        manager = socketio.AsyncRedisManager(settings.redis_url, write_only=True)
        _ctx = build_context(settings, lambda redis: SocketRealtime(manager.emit, redis))
        for module in MODULES:  # queries and listeners, so actors can ask and publish
            module.build(_ctx)
    return _ctx


def _actor(spec: TaskSpec) -> dramatiq.Actor[Any, Any]:
    async def run(**kwargs: Any) -> None:
        await spec.fn(_context(), **kwargs)

    run.__name__ = spec.name.replace(".", "_")
    decorate = dramatiq.actor(actor_name=spec.name, queue_name=spec.queue, broker=broker,
                              max_retries=spec.max_retries, min_backoff=spec.min_backoff_ms,
                              max_backoff=spec.max_backoff_ms, time_limit=spec.time_limit_ms)
    return decorate(run)


SPECS = [prune_outbox_task, *(spec for module in MODULES for spec in module.tasks)]
ACTORS = {spec.name: _actor(spec) for spec in SPECS}
PeriodicScheduler(settings.redis_url, TaskQueue(broker), SPECS).start()
