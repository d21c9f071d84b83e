"""Forgetting: a deleted account's rows, old read notifications, old idempotency records."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, text

from src.infra.context import AppContext
from src.infra.tasks import TaskSpec
from src.modules.notifications.models import devices, notifications, preferences

READ_RETENTION_DAYS = 90  # read notifications older than this go
SOURCE_RETENTION_DAYS = 30  # longer than any event stays redeliverable in the outbox

PRUNE_READ_SQL = text("""
DELETE FROM notifications.notifications WHERE ctid IN (
    SELECT ctid FROM notifications.notifications
    WHERE read_at IS NOT NULL AND updated_at < now() - make_interval(days => :days) LIMIT :batch)
""")
PRUNE_SOURCES_SQL = text("""
DELETE FROM notifications.sources WHERE ctid IN (
    SELECT ctid FROM notifications.sources WHERE created_at < now() - make_interval(days => :days) LIMIT :batch)
""")


async def forget_user(ctx: AppContext, user_id: uuid.UUID) -> None:
    """Delete a deleted account's notifications, preferences and devices (idempotent)."""
    async with ctx.db.session() as session, session.begin():
        for table in (notifications, preferences, devices):
            await session.execute(delete(table).where(table.c.user_id == user_id))


async def prune(ctx: AppContext, batch: int = 5000) -> None:
    """Drop old read notifications and old (recipient, event) records, in batches."""
    await ctx.db.delete_in_batches(PRUNE_READ_SQL, {"days": READ_RETENTION_DAYS}, batch)
    await ctx.db.delete_in_batches(PRUNE_SOURCES_SQL, {"days": SOURCE_RETENTION_DAYS}, batch)


PRUNE = TaskSpec(name="notifications.prune", queue="maintenance", fn=prune, max_retries=3,
                 time_limit_ms=600_000, every_seconds=3600)
