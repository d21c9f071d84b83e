"""The composition root's shared half: the list of modules and the process context."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from src.common.realtime import Realtime
from src.infra.bus import EventBus
from src.infra.config import Settings
from src.infra.context import AppContext
from src.infra.db import Database
from src.infra.modules import Module
from src.infra.queries import QueryBus
from src.infra.ratelimit import RateLimiter
from src.infra.redis import create_redis
from src.infra.tasks import TaskQueue, create_broker
from src.modules.auth import module as auth
from src.modules.blocks import module as blocks
from src.modules.calls import module as calls
from src.modules.follows import module as follows
from src.modules.friendship import module as friendship
from src.modules.media import module as media
from src.modules.messaging import module as messaging
from src.modules.notifications import module as notifications
from src.modules.posts import module as posts
from src.modules.presence import module as presence
from src.modules.privacy import module as privacy
from src.modules.users import module as users

MODULES: list[Module] = [auth, users, blocks, privacy, follows, friendship, messaging, presence, calls, media, posts,
                         notifications]


def build_context(settings: Settings, make_realtime: Callable[[Redis], Realtime]) -> AppContext:
    """Build the technical services of one process (no connection is opened yet)."""
    db = Database(settings.async_database_url, pool_size=settings.db_pool_size, pool_timeout=settings.db_pool_timeout,
                  driver_pool_size=settings.db_driver_pool_size)
    redis = create_redis(settings.redis_url)
    tasks = TaskQueue(create_broker(settings.redis_url, namespace=settings.broker_namespace))
    return AppContext(
        settings=settings, db=db, redis=redis,
        bus=EventBus(db, max_attempts=settings.outbox_max_attempts, dispatch_tasks=settings.dispatch_tasks,
                     dispatch_queue=settings.dispatch_queue, tasks=tasks),
        queries=QueryBus(), realtime=make_realtime(redis), tasks=tasks,
        limiter=RateLimiter(settings.redis_url, redis=redis),
    )
