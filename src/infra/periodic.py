"""Periodic tasks: each worker process offers to enqueue them; Redis lets one offer win per period."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
import structlog
from redis import Redis
from redis.exceptions import RedisError

from src.infra.tasks import TaskQueue, TaskSpec

log = structlog.get_logger("chatty.periodic")
CHECK_INTERVAL = 30.0


class PeriodicScheduler:
    """A daemon thread that enqueues each periodic spec at most once per `every_seconds`."""

    def __init__(self, redis_url: str, tasks: TaskQueue, specs: list[TaskSpec]) -> None:
        self._redis = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self._tasks = tasks
        self._specs = [spec for spec in specs if spec.every_seconds]
        self._stop = threading.Event()

    def tick(self) -> list[str]:
        """Enqueue the specs whose period has passed; return their names."""
        due = []
        for spec in self._specs:
            # The key lives one period: whoever sets it first enqueues, the others skip.
            if self._redis.set(f"periodic:{spec.name}", "1", nx=True, ex=spec.every_seconds):
                self._tasks.enqueue(spec)
                due.append(spec.name)
        return due

    def _run(self) -> None:
        while not self._stop.wait(CHECK_INTERVAL if self._specs else 3600):
            try:
                self.tick()
            except RedisError as exc:
                log.warning("periodic.tick_failed", error=repr(exc))

    def start(self) -> None:
        """Start ticking in the background (first tick after CHECK_INTERVAL)."""
        if self._specs:
            threading.Thread(target=self._run, name="chatty-periodic", daemon=True).start()

    def stop(self) -> None:
        """Stop ticking."""
        self._stop.set()


class PeriodicMiddleware(dramatiq.Middleware):
    """Starts a `PeriodicScheduler` when a worker process boots and stops it at shutdown."""

    def __init__(self, redis_url: str, specs: list[TaskSpec]) -> None:
        self._redis_url, self._specs = redis_url, specs
        self._scheduler: PeriodicScheduler | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._scheduler = PeriodicScheduler(self._redis_url, TaskQueue(broker), self._specs)
        self._scheduler.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
