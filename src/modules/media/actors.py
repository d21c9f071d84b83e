"""Background work of the media module: processing (queue `media`) and lifecycle (queue `maintenance`)."""

from __future__ import annotations

import uuid

from src.infra.context import AppContext
from src.infra.storage import ObjectStorage, build_storage
from src.infra.tasks import TaskSpec
from src.modules.media import lifecycle, processor

_storages: dict[int, ObjectStorage] = {}


def storage_for(ctx: AppContext) -> ObjectStorage:
    """The storage adapter of this process (one per context)."""
    found = _storages.get(id(ctx))
    if found is None:
        found = _storages[id(ctx)] = build_storage(ctx.settings)
    return found


async def process_media(ctx: AppContext, media_id: str) -> None:
    await processor.process(ctx, storage_for(ctx), uuid.UUID(media_id))


async def expire_uploads(ctx: AppContext) -> None:
    await lifecycle.expire_uploads(ctx, storage_for(ctx))


async def remove_orphans(ctx: AppContext) -> None:
    await lifecycle.remove_orphans(ctx, storage_for(ctx))


async def purge_user(ctx: AppContext, user_id: str) -> None:
    await lifecycle.purge_user(ctx, storage_for(ctx), uuid.UUID(user_id))


process_task = TaskSpec(name="media.process", queue="media", fn=process_media, max_retries=3,
                        min_backoff_ms=2_000, time_limit_ms=180_000)
expire_uploads_task = TaskSpec(name="media.expire_uploads", queue="maintenance", fn=expire_uploads,
                               max_retries=3, time_limit_ms=600_000, every_seconds=600)
remove_orphans_task = TaskSpec(name="media.remove_orphans", queue="maintenance", fn=remove_orphans,
                               max_retries=3, time_limit_ms=600_000, every_seconds=3600)
purge_user_task = TaskSpec(name="media.purge_user", queue="maintenance", fn=purge_user, max_retries=8,
                           time_limit_ms=600_000)
TASKS = [process_task, expire_uploads_task, remove_orphans_task, purge_user_task]
