"""What a module is given at start-up: the shared technical services, built once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from src.common.realtime import Realtime
from src.infra.bus import EventBus
from src.infra.config import Settings
from src.infra.db import Database
from src.infra.queries import QueryBus
from src.infra.ratelimit import RateLimiter
from src.infra.tasks import TaskQueue
from src.infra.uow import UnitOfWork


@dataclass
class AppContext:
    """Settings, database, Redis, buses, realtime and task queue of one process."""

    settings: Settings
    db: Database
    redis: Redis
    bus: EventBus
    queries: QueryBus
    realtime: Realtime
    tasks: TaskQueue
    limiter: RateLimiter

    @property
    def uow(self) -> Callable[[], UnitOfWork]:
        """Factory of units of work (`async with ctx.uow() as tx`)."""
        return self.bus.uow
