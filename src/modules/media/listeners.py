"""What media does when events arrive: record attachments, remove media that went with their carrier."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert

from src.common.events.media import AttachedMessage, MediaProcessed
from src.common.events.messaging import MessageCreated, MessageDeleted
from src.common.events.posts import PostCreated, PostDeleted
from src.common.events.users import ProfileImageChanged, UserDeleted
from src.infra.context import AppContext
from src.infra.storage import ObjectStorage
from src.infra.uow import UnitOfWork
from src.modules.media import store
from src.modules.media.actors import purge_user_task
from src.modules.media.models import attachments, items


async def _attach(tx: UnitOfWork, media_ids: list[uuid.UUID], owner_id: uuid.UUID, kind: str,
                  target_id: uuid.UUID, conversation_id: uuid.UUID | None = None) -> list:  # type: ignore[type-arg]
    """Record that `target_id` carries the owner's media; the locked rows (id order) are returned.

    The row lock orders this against the worker finishing the media (processor.finish): one of
    the two sees the other's commit, so a message always hears the outcome once.
    """
    if not media_ids:
        return []
    rows = (await tx.session.execute(select(items.c.id, items.c.status).where(
        items.c.id.in_(media_ids), items.c.owner_id == owner_id).order_by(items.c.id).with_for_update())).all()
    if rows:
        await tx.session.execute(insert(attachments).values([
            {"media_id": r.id, "kind": kind, "target_id": target_id, "conversation_id": conversation_id}
            for r in rows]).on_conflict_do_nothing())
    return list(rows)


async def _released(ctx: AppContext, rows: list, kind: str, target_id: uuid.UUID) -> list:  # type: ignore[type-arg]
    """Detach these media from `target_id`: those nothing else carries (another post or message
    given the same media id) are returned, to be removed with it."""
    if not rows:
        return []
    async with ctx.uow() as tx:
        await tx.session.execute(delete(attachments).where(
            attachments.c.media_id.in_([r.id for r in rows]), attachments.c.kind == kind,
            attachments.c.target_id == target_id))
        kept = set((await tx.session.scalars(select(attachments.c.media_id).where(
            attachments.c.media_id.in_([r.id for r in rows])))).all())
    return [r for r in rows if r.id not in kept]


def register_listeners(ctx: AppContext, storage: ObjectStorage) -> None:
    """Subscribe the media listeners to the bus."""

    async def record_message_media(tx: UnitOfWork, event: MessageCreated) -> None:
        rows = await _attach(tx, event.media_ids, event.sender_id, "message", event.message_id, event.conversation_id)
        for row in rows:
            if row.status in ("ready", "failed"):  # finished before the message was recorded
                tx.publish(MediaProcessed(media_id=row.id, owner_id=event.sender_id, status=row.status,
                                          messages=[AttachedMessage(message_id=event.message_id,
                                                                    conversation_id=event.conversation_id)]))

    async def record_post_media(tx: UnitOfWork, event: PostCreated) -> None:
        await _attach(tx, event.media_ids, event.author_id, "post", event.post_id)

    async def record_profile_image(tx: UnitOfWork, event: ProfileImageChanged) -> None:
        statement = insert(attachments).values(media_id=event.media_id, kind=event.kind, target_id=event.user_id,
                                               attached_at=event.occurred_at)
        exists = await tx.session.scalar(select(items.c.id).where(items.c.id == event.media_id,
                                                                  items.c.owner_id == event.user_id))
        if exists is not None:
            await tx.session.execute(statement.on_conflict_do_update(
                index_elements=[attachments.c.media_id, attachments.c.kind, attachments.c.target_id],
                set_={"attached_at": func.greatest(attachments.c.attached_at, statement.excluded.attached_at)}))

    async def remove_message_media(event: MessageDeleted) -> None:
        # Idempotent by nature: a replay finds nothing left to remove.
        rows = [r for r in await store.load(ctx, event.media_ids) if r.owner_id == event.sender_id]
        rows = await _released(ctx, rows, "message", event.message_id)
        await store.remove(ctx, storage, rows, reason="message_deleted")

    async def remove_post_media(event: PostDeleted) -> None:
        rows = [r for r in await store.load(ctx, event.media_ids) if r.owner_id == event.author_id]
        rows = await _released(ctx, rows, "post", event.post_id)
        await store.remove(ctx, storage, rows, reason="post_deleted")

    async def purge_on_user_deleted(event: UserDeleted) -> None:
        # Enqueuing twice is harmless: the purge removes what is left.
        ctx.tasks.enqueue(purge_user_task, user_id=str(event.user_id))

    ctx.bus.subscribe(MessageCreated, "media.record_message_media", record_message_media,
                      when=lambda event: bool(event.media_ids))  # most messages carry none: no transaction
    ctx.bus.subscribe(PostCreated, "media.record_post_media", record_post_media)
    ctx.bus.subscribe(ProfileImageChanged, "media.record_profile_image", record_profile_image)
    ctx.bus.subscribe_idempotent(MessageDeleted, "media.remove_message_media", remove_message_media)
    ctx.bus.subscribe_idempotent(PostDeleted, "media.remove_post_media", remove_post_media)
    ctx.bus.subscribe_idempotent(UserDeleted, "media.purge_on_user_deleted", purge_on_user_deleted)
