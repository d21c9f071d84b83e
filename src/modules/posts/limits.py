"""The per-user write limit of every posts write (REST and socket)."""

from __future__ import annotations

import uuid

import structlog

from src.infra.context import AppContext
from src.infra.redis import REDIS_ERRORS

log = structlog.get_logger("chatty.posts")


async def hit_write_limit(ctx: AppContext, user_id: uuid.UUID) -> None:
    """Count one write (429 past WRITE_LIMIT_PER_USER). Without Redis the write goes through:
    the limit protects capacity, and refusing every write during an outage would be worse."""
    try:
        await ctx.limiter.hit(ctx.settings.write_limit_per_user, "write", str(user_id))
    except REDIS_ERRORS as exc:
        log.warning("posts.ratelimit_unavailable", error=repr(exc))
