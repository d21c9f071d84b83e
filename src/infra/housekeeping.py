"""Outbox housekeeping: delivered events and inbox records are kept a while, then deleted."""

from __future__ import annotations

from sqlalchemy import text

from src.infra.context import AppContext
from src.infra.tasks import TaskSpec

KEEP_DAYS = 7
_DELETE_OUTBOX = text("""
DELETE FROM infra.outbox WHERE id IN (
    SELECT id FROM infra.outbox WHERE dispatched_at < now() - make_interval(days => :days) LIMIT :batch)
""")
_DELETE_INBOX = text("""
DELETE FROM infra.inbox WHERE ctid IN (
    SELECT ctid FROM infra.inbox WHERE handled_at < now() - make_interval(days => :days) LIMIT :batch)
""")


async def prune_outbox(ctx: AppContext, batch: int = 5000) -> None:
    """Delete delivered outbox rows and inbox records older than KEEP_DAYS (dead rows stay)."""
    for statement in (_DELETE_OUTBOX, _DELETE_INBOX):
        await ctx.db.delete_in_batches(statement, {"days": KEEP_DAYS}, batch)


prune_outbox_task = TaskSpec(name="infra.prune_outbox", queue="maintenance", fn=prune_outbox,
                             max_retries=3, time_limit_ms=600_000, every_seconds=3600)
