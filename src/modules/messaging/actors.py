"""Background work of the messaging module (Dramatiq, queue `maintenance`)."""

from __future__ import annotations

from sqlalchemy import text

from src.infra.context import AppContext
from src.infra.tasks import TaskSpec
from src.modules.messaging.sync import RETENTION_DAYS

PRUNE_SQL = text("""
DELETE FROM messaging.changes WHERE ctid IN (
    SELECT ctid FROM messaging.changes WHERE created_at < now() - make_interval(days => :days) LIMIT :batch)
""")


async def prune_changes(ctx: AppContext, batch: int = 5000) -> None:
    """Delete change-log rows older than the retention period, in batches (idempotent)."""
    await ctx.db.delete_in_batches(PRUNE_SQL, {"days": RETENTION_DAYS}, batch)


prune_changes_task = TaskSpec(name="messaging.prune_changes", queue="maintenance", fn=prune_changes,
                              max_retries=3, time_limit_ms=600_000, every_seconds=3600)
TASKS = [prune_changes_task]
