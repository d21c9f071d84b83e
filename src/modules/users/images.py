"""Avatars and backgrounds: setting them (the caller's ready image, asked of media), their history.

Profiles carry media ids and stable public URLs (`/media/{id}/content/{variant}`) that redirect
to fresh signed URLs: signing stays in media, and a profile row never holds an expiring URL.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from src.common.clock import utcnow
from src.common.errors import NotFound, ValidationFailed
from src.common.events.media import MediaDeleted
from src.common.events.users import ProfileImageChanged
from src.common.pagination import Page, clamp_limit, decode_time_cursor, page_of, time_position
from src.common.queries.media import GetAttachableMedia, public_media_url
from src.common.queries.privacy import CanViewProfile
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.users.models import Profile, ProfileImage
from src.modules.users.schemas import ProfileImageView

VARIANT = {"avatar": "thumb", "background": "display"}


class ProfileImages:
    """Set avatar / background; list a user's history; forget images whose media went away."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx

    def _columns(self, kind: str) -> tuple:  # type: ignore[type-arg]
        if kind == "avatar":
            return Profile.avatar_media_id, Profile.avatar_url
        return Profile.background_media_id, Profile.background_url

    async def set_image(self, me: uuid.UUID, kind: str, media_id: uuid.UUID) -> None:
        """Make the caller's ready image of purpose `kind` their avatar or background (400 otherwise)."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(me))
        found = await self._ctx.queries.ask(GetAttachableMedia(owner_id=me, media_ids=[media_id], purpose=kind))
        if not found or found[0].status != "ready" or found[0].kind != "image":
            raise ValidationFailed(f"media_id must be your processed image uploaded for {kind}",
                                   field="media_id", code="invalid_media")
        id_column, url_column = self._columns(kind)
        url = public_media_url(self._ctx.settings.public_base_url, media_id, VARIANT[kind])
        now = utcnow()
        async with self._ctx.uow() as tx:
            changed = (await tx.session.execute(update(Profile).where(Profile.id == me).values(
                {id_column: media_id, url_column: url, Profile.updated_at: now}).returning(Profile.id))).first()
            if changed is None:
                raise NotFound("No such user", code="user_not_found")
            statement = insert(ProfileImage).values(user_id=me, media_id=media_id, kind=kind, set_at=now)
            await tx.session.execute(statement.on_conflict_do_update(
                index_elements=[ProfileImage.user_id, ProfileImage.media_id, ProfileImage.kind],
                set_={"set_at": now}))
            tx.publish(ProfileImageChanged(user_id=me, kind=kind, media_id=media_id, occurred_at=now))

    async def history(self, viewer: uuid.UUID, user_id: uuid.UUID, limit: int | None,
                      cursor: str | None) -> Page[ProfileImageView]:
        """The user's avatars and backgrounds, newest first (404 for whoever may not see the profile)."""
        if viewer != user_id and not (
                await self._ctx.queries.ask(CanViewProfile(actor_id=viewer, target_id=user_id))).allowed:
            raise NotFound("No such user", code="user_not_found")
        size = clamp_limit(limit)
        position = decode_time_cursor(cursor)
        query = (select(ProfileImage).where(ProfileImage.user_id == user_id)
                 .order_by(ProfileImage.set_at.desc(), ProfileImage.media_id.desc()).limit(size + 1))
        if position:
            query = query.where(tuple_(ProfileImage.set_at, ProfileImage.media_id) < position)
        async with self._ctx.db.session() as session:
            profile = (await session.execute(select(Profile.avatar_media_id, Profile.background_media_id)
                                             .where(Profile.id == user_id))).first()
            if profile is None:
                raise NotFound("No such user", code="user_not_found")
            rows = list((await session.scalars(query)).all())
        page = page_of(rows, size, lambda r: time_position(r.set_at, r.media_id))
        current = {("avatar", profile.avatar_media_id), ("background", profile.background_media_id)}
        base = self._ctx.settings.public_base_url
        return Page(items=[ProfileImageView(
            media_id=r.media_id, kind=r.kind, set_at=r.set_at, current=(r.kind, r.media_id) in current,
            url=public_media_url(base, r.media_id, VARIANT[r.kind]) if (r.kind, r.media_id) in current else None)
            for r in page.items], next_cursor=page.next_cursor)

    async def forget_media(self, tx: UnitOfWork, event: MediaDeleted) -> None:
        """A deleted image leaves the history, and the profile when it was current."""
        if event.purpose not in VARIANT:
            return
        await tx.session.execute(delete(ProfileImage).where(ProfileImage.user_id == event.owner_id,
                                                            ProfileImage.media_id == event.media_id))
        id_column, url_column = self._columns(event.purpose)
        await tx.session.execute(update(Profile).where(Profile.id == event.owner_id, id_column == event.media_id)
                                 .values({id_column: None, url_column: None}))
