"""Periodic clean-up (idempotent, in batches): uploads never completed, media never attached,
and every media item of a deleted account. Removed objects are counted in metrics."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import exists, or_, select

from src.common.clock import utcnow
from src.infra.context import AppContext
from src.infra.storage import ObjectStorage
from src.modules.media import processor, store
from src.modules.media.models import attachments, items

BATCH = 200

_not_attached = ~exists().where(attachments.c.media_id == items.c.id)


async def _drain(ctx: AppContext, storage: ObjectStorage, where: list, reason: str) -> int:  # type: ignore[type-arg]
    removed = 0
    while True:
        async with ctx.db.session() as session:
            rows = list((await session.execute(select(items).where(*where).order_by(items.c.created_at)
                                               .limit(BATCH))).all())
        if not rows:
            return removed
        removed += await store.remove(ctx, storage, rows, reason)
        if len(rows) < BATCH:
            return removed


async def fail_stuck(ctx: AppContext) -> int:
    """Fail media still processing MEDIA_UPLOAD_EXPIRY after completion (their task gave up), so
    that owners and conversations hear an outcome."""
    before = utcnow() - timedelta(seconds=ctx.settings.media_upload_expiry)
    async with ctx.db.session() as session:
        rows = (await session.execute(select(items).where(items.c.status == "processing",
                                                          items.c.completed_at < before).limit(BATCH))).all()
    failed = 0
    for row in rows:
        failed += await processor.finish(ctx, row, {"status": "failed", "failure_reason": "processing did not finish"})
    return failed


async def expire_uploads(ctx: AppContext, storage: ObjectStorage) -> int:
    """Remove uploads never completed (and refused ones nothing carries) after MEDIA_UPLOAD_EXPIRY;
    fail media whose processing never finished."""
    await fail_stuck(ctx)
    before = utcnow() - timedelta(seconds=ctx.settings.media_upload_expiry)
    return await _drain(ctx, storage, [items.c.created_at < before, or_(
        items.c.status == "uploading", (items.c.status == "failed") & _not_attached)], "upload_expired")


async def remove_orphans(ctx: AppContext, storage: ObjectStorage) -> int:
    """Remove completed media that no message, post or profile carries after MEDIA_ORPHAN_EXPIRY."""
    before = utcnow() - timedelta(seconds=ctx.settings.media_orphan_expiry)
    return await _drain(ctx, storage, [items.c.created_at < before, items.c.status != "uploading", _not_attached],
                        "orphaned")


async def purge_user(ctx: AppContext, storage: ObjectStorage, user_id: uuid.UUID) -> int:
    """Remove every media item of a deleted account."""
    return await _drain(ctx, storage, [items.c.owner_id == user_id], "user_deleted")
