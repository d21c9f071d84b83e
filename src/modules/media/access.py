"""Who may see a media item: the owner; members of a conversation whose message carries it;
viewers the post allows; anyone for a current avatar or background, and whoever may see the
profile for earlier ones. Everyone else gets 404."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from src.common.queries.messaging import IsConversationMember
from src.common.queries.posts import CanViewPost
from src.common.queries.privacy import CanViewProfile
from src.infra.context import AppContext
from src.modules.media.models import attachments

PROFILE_KINDS = ("avatar", "background")


async def is_current_profile_image(ctx: AppContext, media_id: uuid.UUID, owner_id: uuid.UUID) -> bool:
    """Whether the media is the owner's current avatar or background (the latest one set)."""
    async with ctx.db.session() as session:
        for kind in PROFILE_KINDS:
            latest = await session.scalar(
                select(attachments.c.media_id).where(attachments.c.kind == kind, attachments.c.target_id == owner_id)
                .order_by(attachments.c.attached_at.desc()).limit(1))
            if latest == media_id:
                return True
    return False


async def may_view(ctx: AppContext, viewer: uuid.UUID, row: Any) -> bool:
    """Whether `viewer` may see media `row` (asks messaging, posts and privacy as needed)."""
    if row.owner_id == viewer:
        return True
    async with ctx.db.session() as session:
        found = (await session.execute(select(attachments).where(attachments.c.media_id == row.id))).all()
    profile_image = False
    for attachment in found:
        if attachment.kind == "message" and attachment.conversation_id is not None:
            if await ctx.queries.ask(IsConversationMember(user_id=viewer, conversation_id=attachment.conversation_id)):
                return True
        elif attachment.kind == "post":
            try:
                if await ctx.queries.ask(CanViewPost(viewer_id=viewer, post_id=attachment.target_id)):
                    return True
            except LookupError:  # no posts module in this process: nobody else may see it
                pass
        elif attachment.kind in PROFILE_KINDS:
            profile_image = True
    if profile_image:
        if await is_current_profile_image(ctx, row.id, row.owner_id):
            return True
        return (await ctx.queries.ask(CanViewProfile(actor_id=viewer, target_id=row.owner_id))).allowed
    return False
