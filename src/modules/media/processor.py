"""Processing one completed upload in a worker (queue `media`): variants, metadata, `media:ready`."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select, update

from src.common.clock import utcnow
from src.common.events.media import AttachedMessage, MediaProcessed
from src.infra.context import AppContext
from src.infra.storage import ObjectStorage
from src.modules.media import metrics, store
from src.modules.media.models import attachments, items
from src.modules.media.processing import MediaRejected, Processed, probe_video, process_image
from src.modules.media.service import view_of

log = structlog.get_logger("chatty.media")


async def process(ctx: AppContext, storage: ObjectStorage, media_id: uuid.UUID) -> None:
    """Process a `processing` media item once (a redelivered task finds it done and stops)."""
    rows = await store.load(ctx, [media_id])
    if not rows or rows[0].status != "processing":
        return
    row = rows[0]
    started = time.perf_counter()
    if await storage.size(store.original_key(row.owner_id, row.id)) is None:  # removed meanwhile
        await finish(ctx, row, {"status": "failed", "failure_reason": "the upload is gone"})
        return
    with tempfile.TemporaryDirectory(prefix="chatty-media-") as tmp:
        work = Path(tmp)
        source = work / "source"
        await storage.download_to(store.original_key(row.owner_id, row.id), source)
        try:
            result = await _run(ctx, row, source, work)
        except MediaRejected as exc:
            await finish(ctx, row, {"status": "failed", "failure_reason": exc.reason[:200]})
            await storage.delete([store.original_key(row.owner_id, row.id)])
            metrics.PROCESSED.labels(kind=row.kind, status="failed").inc()
            return
        variants = await _store_variants(storage, row, result)
    values = {"status": "ready", "width": result.width, "height": result.height, "duration_s": result.duration_s,
              "placeholder": result.placeholder, "processing": result.note, "variants": variants}
    if await finish(ctx, row, values) and row.kind == "image":
        # The original still carries its metadata (EXIF, GPS): only the re-encoded variants stay.
        await storage.delete([store.original_key(row.owner_id, row.id)])
    metrics.PROCESSED.labels(kind=row.kind, status="ready").inc()
    metrics.PROCESSING_SECONDS.labels(kind=row.kind).observe(time.perf_counter() - started)


async def _run(ctx: AppContext, row: Any, source: Path, work: Path) -> Processed:
    max_pixels = ctx.settings.media_max_pixels
    if row.kind == "image":
        return await asyncio.to_thread(process_image, source, work, max_pixels)
    if row.kind == "video":
        return await probe_video(source, work, max_pixels)
    return Processed()  # audio and files are stored as they are


async def _store_variants(storage: ObjectStorage, row: Any, result: Processed) -> dict[str, dict[str, Any]]:
    variants: dict[str, dict[str, Any]] = {}
    for variant in result.variants:
        key = f"{row.owner_id}/{row.id}/{variant.path.name}"
        await storage.put(key, variant.path, variant.content_type)
        variants[variant.name] = {"key": key, "content_type": variant.content_type, "width": variant.width,
                                  "height": variant.height}
    if row.kind != "image":
        variants["original"] = {"key": store.original_key(row.owner_id, row.id), "content_type": row.content_type,
                                "width": result.width, "height": result.height}
    return variants


async def finish(ctx: AppContext, row: Any, values: dict[str, Any]) -> bool:
    """Record the outcome of a `processing` row (False when it no longer is one); tell messaging
    which messages carry the media, and the owner's sockets."""
    async with ctx.uow() as tx:
        # The row lock orders this against the attachment listener (see listeners._attach).
        done = (await tx.session.execute(
            update(items).where(items.c.id == row.id, items.c.status == "processing")
            .values(**values, processed_at=utcnow()).returning(*items.c))).first()
        if done is None:
            return False
        carried = (await tx.session.execute(select(attachments.c.target_id, attachments.c.conversation_id).where(
            attachments.c.media_id == row.id, attachments.c.kind == "message"))).all()
        tx.publish(MediaProcessed(media_id=row.id, owner_id=row.owner_id, status=values["status"],
                                  messages=[AttachedMessage(message_id=m.target_id, conversation_id=m.conversation_id)
                                            for m in carried]))
    await ctx.realtime.emit_to_users("media:ready", view_of(done), [row.owner_id])
    log.info("media.processed", media_id=str(row.id), status=values["status"])
    return True
