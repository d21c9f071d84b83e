"""Reactions on posts: one per user per post; the only code that writes `posts.reactions` and
`reaction_counts`. Each change locks the post row, so concurrent changes on one post queue up
and the counts stay exact (the row lock is held for two short statements)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from src.common.clock import utcnow
from src.common.errors import NotFound
from src.common.events.posts import PostReactionRemoved, PostReactionSet
from src.common.pagination import Page, clamp_limit, decode_time_cursor, page_of, time_position
from src.common.queries.privacy import CanViewProfile
from src.common.queries.users import GetProfiles
from src.infra.context import AppContext
from src.modules.posts.limits import hit_write_limit
from src.modules.posts.models import posts, reactions
from src.modules.posts.schemas import GivenReaction, PostReactionState, ReactionPage, ReactionView
from src.modules.posts.service import PostsService
from src.modules.posts.views import post_not_found, reads
from src.modules.posts.visibility import load_viewer, visible_to


def _counts(raw: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in raw.items() if v > 0}


class ReactionsService:
    """Set, remove and list reactions."""

    def __init__(self, ctx: AppContext, posts_service: PostsService) -> None:
        self._ctx, self._posts = ctx, posts_service

    async def set(self, user_id: uuid.UUID, post_id: uuid.UUID, type_: str | None) -> PostReactionState:
        """React with `type_` (replacing another type), or remove the reaction when None."""
        await hit_write_limit(self._ctx, user_id)
        post_author = await self._posts.visible_author(user_id, post_id)
        async with self._ctx.uow() as tx:
            counts = await tx.session.scalar(select(posts.c.reaction_counts).where(posts.c.id == post_id)
                                             .with_for_update())
            if counts is None:
                raise post_not_found()
            old = await tx.session.scalar(select(reactions.c.type).where(
                reactions.c.post_id == post_id, reactions.c.user_id == user_id))
            if old == type_:
                return PostReactionState(post_id=post_id, user_id=user_id, type=type_, counts=_counts(counts))
            counts = dict(counts)
            if old is not None:
                counts[old] = counts.get(old, 0) - 1
            if type_ is None:
                await tx.session.execute(delete(reactions).where(reactions.c.post_id == post_id,
                                                                 reactions.c.user_id == user_id))
                tx.publish(PostReactionRemoved(post_id=post_id, user_id=user_id, post_author_id=post_author))
            else:
                counts[type_] = counts.get(type_, 0) + 1
                await tx.session.execute(
                    insert(reactions).values(post_id=post_id, user_id=user_id, type=type_, created_at=utcnow())
                    .on_conflict_do_update(index_elements=[reactions.c.post_id, reactions.c.user_id],
                                           set_={"type": type_, "created_at": utcnow()}))
                tx.publish(PostReactionSet(post_id=post_id, user_id=user_id, post_author_id=post_author, type=type_))
            counts = _counts(counts)
            await tx.session.execute(update(posts).where(posts.c.id == post_id).values(reaction_counts=counts))
        state = PostReactionState(post_id=post_id, user_id=user_id, type=type_, counts=counts)
        await self._ctx.realtime.emit_to_users("post:reaction", state, [post_author])
        await self._ctx.realtime.emit_to_room("post:reaction", state, f"post:{post_id}")
        return state

    async def list(self, viewer_id: uuid.UUID | None, post_id: uuid.UUID, type_: str | None, limit: int | None,
                   cursor: str | None) -> ReactionPage:
        """Who reacted to a post, newest first, with the exact count per type."""
        size = clamp_limit(limit)
        position = decode_time_cursor(cursor)
        await self._posts.visible_author(viewer_id, post_id)
        query = (select(reactions.c.user_id, reactions.c.type, reactions.c.created_at)
                 .where(reactions.c.post_id == post_id)
                 .order_by(reactions.c.created_at.desc(), reactions.c.user_id.desc()).limit(size + 1))
        if type_ is not None:
            query = query.where(reactions.c.type == type_)
        if position is not None:
            query = query.where(tuple_(reactions.c.created_at, reactions.c.user_id) < position)
        async with reads(self._ctx).connect() as session:
            rows = list((await session.execute(query)).all())
            counts = await session.scalar(select(posts.c.reaction_counts).where(posts.c.id == post_id)) or {}
        page = page_of(rows, size, lambda r: time_position(r.created_at, r.user_id))
        profiles = await self._ctx.queries.ask(GetProfiles(user_ids=[r.user_id for r in page.items]))
        return ReactionPage(items=[ReactionView(user=profiles[r.user_id], type=r.type, created_at=r.created_at)
                                   for r in page.items if r.user_id in profiles],
                            counts=_counts(counts), next_cursor=page.next_cursor)

    async def given_by(self, viewer_id: uuid.UUID, user_id: uuid.UUID, limit: int | None,
                       cursor: str | None) -> Page[GivenReaction]:
        """Reactions `user_id` gave, newest first, only on posts the viewer may see."""
        size = clamp_limit(limit)
        position = decode_time_cursor(cursor)
        if viewer_id != user_id and not (await self._ctx.queries.ask(
                CanViewProfile(actor_id=viewer_id, target_id=user_id))).allowed:
            raise NotFound("No such user", code="user_not_found")
        viewer = await load_viewer(self._ctx, viewer_id)
        query = (select(reactions.c.post_id, posts.c.author_id, reactions.c.type, reactions.c.created_at)
                 .join(posts, posts.c.id == reactions.c.post_id)
                 .where(reactions.c.user_id == user_id, visible_to(viewer))
                 .order_by(reactions.c.created_at.desc(), reactions.c.post_id.desc()).limit(size + 1))
        if position is not None:
            query = query.where(tuple_(reactions.c.created_at, reactions.c.post_id) < position)
        async with reads(self._ctx).connect() as session:
            rows: list[Any] = list((await session.execute(query)).all())
        page = page_of(rows, size, lambda r: time_position(r.created_at, r.post_id))
        return Page(items=[GivenReaction(post_id=r.post_id, post_author_id=r.author_id, type=r.type,
                                         created_at=r.created_at) for r in page.items],
                    next_cursor=page.next_cursor)
