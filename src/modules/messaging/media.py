"""Media on messages: the sender's attachable media (asked of media), media in views, and
`message:updated` when processing of a message's media ends."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec
from sqlalchemy import select

from src.common.errors import ValidationFailed
from src.common.events.media import MediaProcessed
from src.common.queries.media import GetAttachableMedia, GetMediaViews
from src.common.queries.media import MediaView as SharedMedia
from src.infra.context import AppContext
from src.modules.messaging import changes
from src.modules.messaging.changes import Fanout
from src.modules.messaging.models import members, messages
from src.modules.messaging.schemas import MediaRef, MessageView
from src.modules.messaging.views import MESSAGE_COLUMNS, message_views

LISTENER = "messaging.update_message_on_media_processed"


def media_ref(media_id: uuid.UUID, found: SharedMedia | None) -> MediaRef:
    if found is None:
        return MediaRef(id=media_id)
    return MediaRef(id=media_id, kind=found.kind, status=found.status, content_type=found.content_type,
                    size=found.size, width=found.width, height=found.height, duration_s=found.duration_s)


async def checked_media(ctx: AppContext, sender: uuid.UUID, media_ids: list[uuid.UUID]) -> list[MediaRef]:
    """The sender's media of purpose `message` (ready or processing), in the given order; 400 otherwise."""
    if not media_ids:
        return []
    found = {m.id: m for m in await ctx.queries.ask(GetAttachableMedia(owner_id=sender, media_ids=media_ids,
                                                                       purpose="message"))}
    if missing := [m for m in media_ids if m not in found]:
        raise ValidationFailed(f"media {missing[0]} is not yours, not for messages, or not uploaded",
                               field="media_ids", code="invalid_media")
    return [media_ref(m, found[m]) for m in media_ids]


async def with_media(ctx: AppContext, views: Sequence[MessageView]) -> list[MessageView]:
    """The views with their media described (one question to media for all of them)."""
    wanted = list({ref.id for view in views for ref in view.media})
    if not wanted:
        return list(views)
    found = await ctx.queries.ask(GetMediaViews(media_ids=wanted))
    return [msgspec.structs.replace(view, media=[media_ref(ref.id, found.get(ref.id)) for ref in view.media])
            if view.media else view for view in views]


class MediaUpdates:
    """Announces `message:updated` to a conversation's members once a message's media is processed."""

    def __init__(self, ctx: AppContext, fanout: Fanout) -> None:
        self._ctx = ctx
        self._fanout = fanout

    async def on_media_processed(self, event: MediaProcessed) -> None:
        """Log and emit the refreshed message of each conversation that carries the media (once per event)."""
        if not event.messages:
            return
        async with self._ctx.uow() as tx:
            if not await tx.claim(LISTENER, event.event_id):
                return
            pending = self._fanout.after_commit(tx)
            conn = await tx.session.connection()
            for attached in event.messages:
                row = (await conn.execute(select(*MESSAGE_COLUMNS).where(
                    messages.c.id == attached.message_id))).first()
                if row is None or row.deleted_at is not None:
                    continue
                view = (await with_media(self._ctx, await message_views(conn, [row], None)))[0]
                member_ids = list((await conn.scalars(select(members.c.user_id).where(
                    members.c.conversation_id == row.conversation_id))).all())
                await changes.record(conn, pending, member_ids, "message:updated", row.conversation_id, view)
