"""Uploads, completion, reads and deletes of media: the only code that writes `media.items` from requests."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update

from src.common.clock import utcnow
from src.common.errors import AppError, Conflict, NotFound, ValidationFailed
from src.common.ids import new_id
from src.common.queries.media import MediaView as SharedView
from src.infra.context import AppContext
from src.infra.storage import ObjectStorage
from src.infra.tasks import TaskSpec
from src.modules.media import store
from src.modules.media.access import is_current_profile_image, may_view
from src.modules.media.models import items
from src.modules.media.policy import SNIFF_BYTES, check_upload, max_bytes, sniff
from src.modules.media.schemas import MediaView, NewUpload, UploadTicket, VariantView

VISIBLE_STATUSES = ("processing", "ready")


def media_not_found() -> NotFound:
    return NotFound("No such media", code="media_not_found")


class UploadRefused(AppError):
    status, code, title = 400, "upload_invalid", "Invalid upload"


def view_of(row: Any) -> MediaView:
    """A media row as its view, without URLs."""
    return MediaView(id=row.id, owner_id=row.owner_id, purpose=row.purpose, kind=row.kind, status=row.status,
                     filename=row.filename, content_type=row.content_type, size=row.size, width=row.width,
                     height=row.height, duration_s=row.duration_s, placeholder=row.placeholder,
                     processing=row.processing, failure_reason=row.failure_reason, created_at=row.created_at)


class MediaService:
    """Direct uploads to storage, completion (type sniffed from the bytes), signed reads, deletes."""

    def __init__(self, ctx: AppContext, storage: ObjectStorage, process_task: TaskSpec) -> None:
        self._ctx = ctx
        self._storage = storage
        self._process_task = process_task
        self._settings = ctx.settings
        self._autocommit = ctx.db.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def create_upload(self, me: uuid.UUID, data: NewUpload) -> UploadTicket:
        """Record an upload and sign a direct-upload target of exactly that type and at most that size."""
        kind = check_upload(self._settings, data.purpose, data.content_type, data.size)
        await self._ctx.limiter.hit(self._settings.upload_limit_per_user, "upload", str(me))
        media_id = new_id()
        content_type = data.content_type.lower()
        async with self._autocommit.connect() as conn:  # one statement: no BEGIN / COMMIT round trips
            await conn.execute(insert(items).values(
                id=media_id, owner_id=me, purpose=data.purpose, kind=kind, status="uploading",
                filename=data.filename, declared_type=content_type, content_type=content_type, size=data.size))
        target = await self._storage.upload_target(store.original_key(me, media_id), content_type, data.size,
                                                   self._settings.media_upload_url_ttl)
        return UploadTicket(upload_id=media_id, url=target.url, method=target.method, fields=target.fields,
                            headers={}, expires_at=target.expires_at, max_size=data.size)

    async def _own(self, me: uuid.UUID, media_id: uuid.UUID) -> Any:
        rows = await store.load(self._ctx, [media_id])
        if not rows or rows[0].owner_id != me:
            raise media_not_found()
        return rows[0]

    async def complete(self, me: uuid.UUID, media_id: uuid.UUID) -> MediaView:
        """Check the stored object (declared size, type sniffed from its bytes) and queue processing."""
        await self._ctx.limiter.hit(self._settings.write_limit_per_user, "write", str(me))
        row = await self._own(me, media_id)
        if row.status != "uploading":
            return view_of(row)  # completing twice answers the same media
        key = store.original_key(me, media_id)
        size = await self._storage.size(key)
        if size is None:
            raise Conflict("Nothing was uploaded yet", code="upload_missing")
        if size != row.size or size > max_bytes(self._settings, row.kind):
            await self._fail(row, f"size {size} differs from the declared {row.size}")
            raise UploadRefused("The uploaded size differs from the declared size", code="size_mismatch")
        content_type = sniff(await self._storage.read_head(key, SNIFF_BYTES), row.kind)
        if content_type is None:
            await self._fail(row, f"the bytes are not a supported {row.kind}")
            raise UploadRefused(f"The file is not a supported {row.kind}", code="type_mismatch")
        async with self._ctx.uow() as tx:
            done = (await tx.session.execute(
                update(items).where(items.c.id == media_id, items.c.status == "uploading")
                .values(status="processing", content_type=content_type, completed_at=utcnow())
                .returning(*items.c))).first()
        if done is None:  # a concurrent completion won
            return view_of((await store.load(self._ctx, [media_id]))[0])
        self._ctx.tasks.enqueue(self._process_task, media_id=str(media_id))
        return view_of(done)

    async def _fail(self, row: Any, reason: str) -> None:
        """Refuse an upload: its object goes at once, the row stays `failed` (the lifecycle removes it)."""
        await self._storage.delete([store.original_key(row.owner_id, row.id)])
        async with self._ctx.uow() as tx:
            await tx.session.execute(update(items).where(items.c.id == row.id)
                                     .values(status="failed", failure_reason=reason[:200]))

    async def get(self, viewer: uuid.UUID, media_id: uuid.UUID) -> MediaView:
        """Metadata and signed URLs, for whoever may see the media (404 for everyone else)."""
        rows = await store.load(self._ctx, [media_id])
        if not rows or not await may_view(self._ctx, viewer, rows[0]):
            raise media_not_found()
        if rows[0].owner_id != viewer and rows[0].status not in VISIBLE_STATUSES:
            raise media_not_found()
        return await self._with_urls(rows[0])

    async def _with_urls(self, row: Any) -> MediaView:
        view = view_of(row)
        if row.status != "ready":
            return view
        ttl = self._settings.media_download_url_ttl
        for name, variant in (row.variants or {}).items():
            url = await self._storage.download_url(
                variant["key"], variant["content_type"], ttl,
                filename=row.filename if name == "original" and row.kind == "file" else None)
            view.variants[name] = VariantView(url=url, content_type=variant["content_type"],
                                              width=variant.get("width"), height=variant.get("height"))
        view.urls_expire_at = utcnow() + timedelta(seconds=ttl)
        return view

    async def public_url(self, media_id: uuid.UUID, variant: str) -> str:
        """A fresh signed URL of a current avatar or background (anyone may see those); 404 otherwise."""
        rows = await store.load(self._ctx, [media_id])
        if not rows or rows[0].status != "ready" or variant not in (rows[0].variants or {}):
            raise media_not_found()
        if not await is_current_profile_image(self._ctx, media_id, rows[0].owner_id):
            raise media_not_found()
        found = rows[0].variants[variant]
        return await self._storage.download_url(found["key"], found["content_type"],
                                                self._settings.media_download_url_ttl)

    async def delete(self, me: uuid.UUID, media_id: uuid.UUID) -> None:
        """Delete one's own media: every stored variant, then the row."""
        await self._ctx.limiter.hit(self._settings.write_limit_per_user, "write", str(me))
        await store.remove(self._ctx, self._storage, [await self._own(me, media_id)], reason="deleted")

    async def attachable(self, owner_id: uuid.UUID, media_ids: list[uuid.UUID], purpose: str) -> list[SharedView]:
        """The owner's media among `media_ids` with this purpose, ready or processing."""
        async with self._ctx.db.session() as session:
            rows = (await session.execute(select(items).where(
                items.c.id.in_(media_ids), items.c.owner_id == owner_id, items.c.purpose == purpose,
                items.c.status.in_(VISIBLE_STATUSES)))).all()
        return [store.shared_view(r) for r in rows]

    async def views(self, media_ids: list[uuid.UUID]) -> dict[uuid.UUID, SharedView]:
        """Media by id, whoever owns them."""
        return {r.id: store.shared_view(r) for r in await store.load(self._ctx, media_ids)}


def check_variant(variant: str) -> str:
    if variant not in ("thumb", "display", "original"):
        raise ValidationFailed("unknown variant", field="variant", code="invalid_variant")
    return variant
