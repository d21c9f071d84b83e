"""Posts: create, read, list, edit, delete — the only code that writes `posts.posts`."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import structlog
from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from src.common.clock import utcnow
from src.common.errors import ValidationFailed
from src.common.events.posts import PostCreated, PostDeleted
from src.common.ids import new_id
from src.common.pagination import Page, clamp_limit, decode_time_cursor, page_of, time_position
from src.common.queries.graph import FollowerCount
from src.common.queries.media import GetAttachableMedia
from src.infra.context import AppContext
from src.infra.redis import REDIS_ERRORS
from src.modules.posts.actors import broadcast_task
from src.modules.posts.feed import BigAuthors
from src.modules.posts.feed_cache import PostCache
from src.modules.posts.limits import hit_write_limit
from src.modules.posts.models import posts, pull_authors
from src.modules.posts.schemas import NewPost, PostPatch, PostView
from src.modules.posts.views import post_not_found, post_views, reads, select_posts
from src.modules.posts.visibility import can_view, load_viewer, visible_to

log = structlog.get_logger("chatty.posts")


class PostsService:
    """Posts CRUD with visibility applied to every read."""

    def __init__(self, ctx: AppContext, big_authors: BigAuthors, cache: PostCache) -> None:
        self._ctx = ctx
        self._big_authors = big_authors
        self._cache = cache

    async def _hit(self, user_id: uuid.UUID) -> None:
        await hit_write_limit(self._ctx, user_id)

    async def _media_kinds(self, author_id: uuid.UUID, media_ids: list[uuid.UUID]) -> list[str]:
        if not media_ids:
            return []
        if len(set(media_ids)) != len(media_ids):
            raise ValidationFailed("media_ids has duplicates", field="media_ids")
        found = await self._ctx.queries.ask(GetAttachableMedia(owner_id=author_id, media_ids=media_ids,
                                                               purpose="post"))
        if {m.id for m in found} != set(media_ids):
            raise ValidationFailed("some media are not yours, not for posts, or not uploaded",
                                   field="media_ids", code="invalid_media")
        return sorted({m.kind for m in found})

    async def create(self, author_id: uuid.UUID, data: NewPost) -> PostView:
        """Publish a post; followers' feeds get it through the `posts.fanout` worker task."""
        await self._hit(author_id)
        if data.body is None and data.gif_url is None and not data.media_ids:
            raise ValidationFailed("a post needs a body, a gif_url or media", field="body", code="empty_post")
        kinds = await self._media_kinds(author_id, data.media_ids)
        settings = self._ctx.settings
        big = await self._ctx.queries.ask(
            FollowerCount(user_id=author_id, cap=settings.feed_fanout_max_followers + 1)
        ) > settings.feed_fanout_max_followers
        post_id, now = new_id(), utcnow()
        async with self._ctx.uow() as tx:
            if big:  # readers pull this author's posts from PostgreSQL (feed.py)
                await tx.session.execute(insert(pull_authors).values(author_id=author_id, marked_at=now)
                                         .on_conflict_do_nothing())
            await tx.session.execute(insert(posts).values(
                id=post_id, author_id=author_id, body=data.body, bg_color=data.bg_color, feelings=data.feelings,
                gif_url=data.gif_url, media_ids=data.media_ids, media_kinds=kinds, privacy=data.privacy,
                comment_count=0, reaction_counts={}, created_at=now))
            tx.publish(PostCreated(post_id=post_id, author_id=author_id, privacy=data.privacy,
                                   media_ids=data.media_ids))
        if big:
            self._big_authors.forget()
        return await self.get(author_id, post_id)

    async def _row(self, viewer_id: uuid.UUID | None, post_id: uuid.UUID) -> Any:
        async with reads(self._ctx).connect() as session:
            row = (await session.execute(select_posts(viewer_id).where(posts.c.id == post_id))).first()
        if row is None or not await can_view(self._ctx, viewer_id, row.author_id, row.privacy):
            raise post_not_found()
        return row

    async def get(self, viewer_id: uuid.UUID | None, post_id: uuid.UUID) -> PostView:
        """One post; 404 when it does not exist or the viewer may not see it."""
        return (await post_views(self._ctx, [await self._row(viewer_id, post_id)]))[0]

    async def visible_author(self, viewer_id: uuid.UUID | None, post_id: uuid.UUID) -> uuid.UUID:
        """The author of a post the viewer may see (404 otherwise)."""
        return (await self._row(viewer_id, post_id)).author_id  # type: ignore[no-any-return]

    async def can_view_post(self, viewer_id: uuid.UUID, post_id: uuid.UUID) -> bool:
        """The `CanViewPost` answer."""
        async with reads(self._ctx).connect() as session:
            row = (await session.execute(select(posts.c.author_id, posts.c.privacy)
                                         .where(posts.c.id == post_id))).first()
        return row is not None and await can_view(self._ctx, viewer_id, row.author_id, row.privacy)

    async def by_author(self, viewer_id: uuid.UUID | None, author_id: uuid.UUID, kind: str | None,
                        limit: int | None, cursor: str | None) -> Page[PostView]:
        """An author's posts the viewer may see, newest first, optionally only those with images / videos."""
        size = clamp_limit(limit)
        position = decode_time_cursor(cursor)
        viewer = await load_viewer(self._ctx, viewer_id)
        query = (select_posts(viewer_id).where(posts.c.author_id == author_id, visible_to(viewer))
                 .order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(size + 1))
        if kind is not None:
            query = query.where(posts.c.media_kinds.any(kind))
        if position is not None:
            query = query.where(tuple_(posts.c.created_at, posts.c.id) < position)
        async with reads(self._ctx).connect() as session:
            rows = (await session.execute(query)).all()
        page = page_of(list(rows), size, lambda r: time_position(r.created_at, r.id))
        return Page(items=await post_views(self._ctx, page.items), next_cursor=page.next_cursor)

    async def update(self, author_id: uuid.UUID, post_id: uuid.UUID, patch: PostPatch) -> PostView:
        """Edit a post (its author only; others get 404 or nothing to edit)."""
        await self._hit(author_id)
        values = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        async with self._ctx.uow() as tx:
            row = (await tx.session.execute(select(posts).where(posts.c.id == post_id).with_for_update())).first()
            if row is None or row.author_id != author_id:
                raise post_not_found()
            body = values.get("body", row.body)
            gif = values.get("gif_url", row.gif_url)
            if body is None and gif is None and not row.media_ids:
                raise ValidationFailed("a post needs a body, a gif_url or media", field="body", code="empty_post")
            if values:
                await tx.session.execute(update(posts).where(posts.c.id == post_id)
                                         .values(**values, edited_at=func.now()))
        if values:
            await self._forget_cached(post_id)
        view = await self.get(author_id, post_id)
        if values:
            self._broadcast(post_id, author_id, view.privacy, "post:updated")
        return view

    async def delete(self, author_id: uuid.UUID, post_id: uuid.UUID) -> None:
        """Delete a post with its comments and reactions (author only)."""
        await self._hit(author_id)
        async with self._ctx.uow() as tx:
            row = (await tx.session.execute(
                delete(posts).where(posts.c.id == post_id, posts.c.author_id == author_id)
                .returning(posts.c.media_ids, posts.c.privacy))).first()
            if row is None:
                raise post_not_found()
            tx.publish(PostDeleted(post_id=post_id, author_id=author_id, media_ids=list(row.media_ids)))
        self._broadcast(post_id, author_id, row.privacy, "post:deleted")

    async def _forget_cached(self, post_id: uuid.UUID) -> None:
        """The feed's cached copy of an edited post goes (deletions, comments and reactions do it
        through their events)."""
        try:
            await self._cache.tombstone([post_id])
        except REDIS_ERRORS as exc:
            log.warning("posts.feed_cache_not_updated", post_id=str(post_id), error=repr(exc))

    def _broadcast(self, post_id: uuid.UUID, author_id: uuid.UUID, privacy: str, event: str) -> None:
        # After the commit and only a hint (like every emit): a broker outage must not fail the write.
        try:
            self._ctx.tasks.enqueue(broadcast_task, post_id=str(post_id), author_id=str(author_id),
                                    privacy=privacy, event=event)
        except REDIS_ERRORS as exc:
            log.warning("posts.broadcast_not_enqueued", post_id=str(post_id), error=repr(exc))
