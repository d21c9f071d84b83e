"""Comments on posts: the only code that writes `posts.comments` (and `comment_count`)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from src.common.clock import utcnow
from src.common.errors import NotFound
from src.common.events.posts import CommentCreated, CommentDeleted
from src.common.ids import new_id
from src.common.pagination import Page, clamp_limit, decode_time_cursor, page_of, time_position
from src.common.queries.graph import BlockedEitherWay
from src.common.queries.users import GetProfiles
from src.infra.context import AppContext
from src.modules.posts.limits import hit_write_limit
from src.modules.posts.models import comments, posts
from src.modules.posts.schemas import CommentView
from src.modules.posts.service import PostsService
from src.modules.posts.views import post_not_found, reads

COLUMNS = [comments.c.id, comments.c.post_id, comments.c.author_id, comments.c.body, comments.c.created_at]


def _not_found() -> NotFound:
    return NotFound("No such comment", code="comment_not_found")


class CommentsService:
    """Create, list, read and delete comments of posts the caller may see."""

    def __init__(self, ctx: AppContext, posts_service: PostsService) -> None:
        self._ctx, self._posts = ctx, posts_service

    async def _views(self, rows: list[Any]) -> list[CommentView]:
        profiles = await self._ctx.queries.ask(GetProfiles(user_ids=list({r.author_id for r in rows})))
        return [CommentView(id=r.id, post_id=r.post_id, author_id=r.author_id, author=profiles.get(r.author_id),
                            body=r.body, created_at=r.created_at) for r in rows]

    async def _hidden_authors(self, viewer_id: uuid.UUID | None) -> list[uuid.UUID]:
        if viewer_id is None:
            return []
        blocked: set[uuid.UUID] = await self._ctx.queries.ask(BlockedEitherWay(user_id=viewer_id))
        return list(blocked)

    async def create(self, author_id: uuid.UUID, post_id: uuid.UUID, body: str) -> CommentView:
        """Comment on a post the author may see; `comment:new` goes to the post's author and watchers."""
        await hit_write_limit(self._ctx, author_id)
        post_author = await self._posts.visible_author(author_id, post_id)
        comment_id, now = new_id(), utcnow()
        async with self._ctx.uow() as tx:
            counted = (await tx.session.execute(update(posts).where(posts.c.id == post_id)
                                                .values(comment_count=posts.c.comment_count + 1)
                                                .returning(posts.c.id))).first()
            if counted is None:  # deleted meanwhile
                raise post_not_found()
            await tx.session.execute(insert(comments).values(id=comment_id, post_id=post_id, author_id=author_id,
                                                             body=body, created_at=now))
            tx.publish(CommentCreated(post_id=post_id, comment_id=comment_id, author_id=author_id,
                                      post_author_id=post_author))
        view = (await self._views([_Row(comment_id, post_id, author_id, body, now)]))[0]
        await self._ctx.realtime.emit_to_users("comment:new", view, [post_author])
        await self._ctx.realtime.emit_to_room("comment:new", view, f"post:{post_id}")
        return view

    async def list(self, viewer_id: uuid.UUID | None, post_id: uuid.UUID, limit: int | None,
                   cursor: str | None) -> Page[CommentView]:
        """A post's comments, oldest first, without those of users blocked either way with the viewer."""
        size = clamp_limit(limit)
        position = decode_time_cursor(cursor)
        await self._posts.visible_author(viewer_id, post_id)
        query = (select(*COLUMNS).where(comments.c.post_id == post_id)
                 .order_by(comments.c.created_at, comments.c.id).limit(size + 1))
        if hidden := await self._hidden_authors(viewer_id):
            query = query.where(comments.c.author_id.not_in(hidden))
        if position is not None:
            query = query.where(tuple_(comments.c.created_at, comments.c.id) > position)
        async with reads(self._ctx).connect() as session:
            rows = list((await session.execute(query)).all())
        page = page_of(rows, size, lambda r: time_position(r.created_at, r.id))
        return Page(items=await self._views(page.items), next_cursor=page.next_cursor)

    async def get(self, viewer_id: uuid.UUID | None, post_id: uuid.UUID, comment_id: uuid.UUID) -> CommentView:
        """One comment of a post the viewer may see."""
        await self._posts.visible_author(viewer_id, post_id)
        async with reads(self._ctx).connect() as session:
            row = (await session.execute(select(*COLUMNS).where(comments.c.id == comment_id,
                                                                 comments.c.post_id == post_id))).first()
        if row is None or row.author_id in await self._hidden_authors(viewer_id):
            raise _not_found()
        return (await self._views([row]))[0]

    async def delete(self, actor_id: uuid.UUID, post_id: uuid.UUID, comment_id: uuid.UUID) -> None:
        """Delete a comment: its author or the post's author."""
        await hit_write_limit(self._ctx, actor_id)
        post_author = await self._posts.visible_author(actor_id, post_id)
        async with self._ctx.uow() as tx:
            where = [comments.c.id == comment_id, comments.c.post_id == post_id]
            if actor_id != post_author:
                where.append(comments.c.author_id == actor_id)
            row = (await tx.session.execute(delete(comments).where(*where)
                                            .returning(comments.c.author_id))).first()
            if row is None:
                raise _not_found()
            await tx.session.execute(update(posts).where(posts.c.id == post_id)
                                     .values(comment_count=posts.c.comment_count - 1))
            tx.publish(CommentDeleted(post_id=post_id, comment_id=comment_id, author_id=row.author_id,
                                      post_author_id=post_author))


class _Row:
    """A just-inserted comment shaped like a selected row."""

    def __init__(self, id: uuid.UUID, post_id: uuid.UUID, author_id: uuid.UUID, body: str, created_at: Any) -> None:
        self.id, self.post_id, self.author_id, self.body, self.created_at = id, post_id, author_id, body, created_at
