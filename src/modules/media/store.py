"""Reading and removing media rows together with their stored objects (shared by the services)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import delete, select

from src.common.events.media import MediaDeleted
from src.common.queries.media import MediaView as SharedView
from src.infra.context import AppContext
from src.infra.storage import ObjectStorage
from src.modules.media import metrics
from src.modules.media.models import items

log = structlog.get_logger("chatty.media")


def original_key(owner_id: uuid.UUID, media_id: uuid.UUID) -> str:
    return f"{owner_id}/{media_id}/original"


def object_keys(row: Any) -> list[str]:
    """Every stored object of a media row: the original and each variant."""
    keys = {original_key(row.owner_id, row.id)}
    keys.update(v["key"] for v in (row.variants or {}).values())
    return sorted(keys)


def shared_view(row: Any) -> SharedView:
    """What other modules may know of a media item (no URL)."""
    return SharedView(id=row.id, owner_id=row.owner_id, purpose=row.purpose, kind=row.kind, status=row.status,
                      content_type=row.content_type, size=row.size, width=row.width, height=row.height,
                      duration_s=row.duration_s)


async def load(ctx: AppContext, media_ids: Sequence[uuid.UUID]) -> list[Any]:
    """Media rows by id (absent ids are skipped)."""
    if not media_ids:
        return []
    async with ctx.db.session() as session:
        return list((await session.execute(select(items).where(items.c.id.in_(list(media_ids))))).all())


async def remove(ctx: AppContext, storage: ObjectStorage, rows: Sequence[Any], reason: str) -> int:
    """Delete these media: objects first, then rows (a retry finds what is left); one MediaDeleted each.

    Returns how many objects were removed from storage (counted in metrics per reason).
    """
    if not rows:
        return 0
    keys = [key for row in rows for key in object_keys(row)]
    await storage.delete(keys)
    async with ctx.uow() as tx:
        gone = (await tx.session.execute(delete(items).where(items.c.id.in_([r.id for r in rows]))
                                         .returning(items.c.id, items.c.owner_id, items.c.purpose))).all()
        for row in gone:
            tx.publish(MediaDeleted(media_id=row.id, owner_id=row.owner_id, purpose=row.purpose))
    metrics.REMOVED_OBJECTS.labels(reason=reason).inc(len(keys))
    metrics.REMOVED_MEDIA.labels(reason=reason).inc(len(gone))
    log.info("media.removed", reason=reason, media=len(gone), objects=len(keys))
    return len(keys)
