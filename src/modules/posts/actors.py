"""Background work of the posts module (Dramatiq, queue `feed`): fan a new post out to its
author's followers' timelines and sockets; tell followers of edits and deletions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from sqlalchemy.dialects.postgresql import insert

from src.common.clock import utcnow
from src.common.queries.graph import BlockedEitherWay, FollowerCount, FollowerIdsAfter
from src.infra.context import AppContext
from src.infra.tasks import TaskSpec
from src.modules.posts.models import posts, pull_authors
from src.modules.posts.schemas import PostRef
from src.modules.posts.timeline import Timelines
from src.modules.posts.views import post_views, reads, select_posts

PAGE = 2000  # followers per read and per emit


async def _audience(ctx: AppContext, author_id: uuid.UUID) -> AsyncIterator[list[uuid.UUID]]:
    """The author's followers, page by page, without anyone blocked either way."""
    blocked = await ctx.queries.ask(BlockedEitherWay(user_id=author_id))
    after = None
    while True:
        ids = await ctx.queries.ask(FollowerIdsAfter(user_id=author_id, after=after, limit=PAGE))
        if not ids:
            return
        after = ids[-1]
        yield [u for u in ids if u not in blocked]


async def fanout(ctx: AppContext, post_id: str) -> None:
    """Push a new post into followers' timelines (authors up to the threshold) and emit `post:new`
    to the followers allowed to see it. Idempotent: a timeline holds a post once; an emit is a hint."""
    async with reads(ctx).connect() as session:
        row = (await session.execute(select_posts(None).where(posts.c.id == uuid.UUID(post_id)))).first()
    if row is None:
        return
    view = (await post_views(ctx, [row]))[0]
    await ctx.realtime.emit_to_users("post:new", view, [row.author_id])
    if row.privacy == "private":
        return
    settings = ctx.settings
    limit = settings.feed_fanout_max_followers
    push = await ctx.queries.ask(FollowerCount(user_id=row.author_id, cap=limit + 1)) <= limit
    if not push:
        async with ctx.uow() as tx:
            await tx.session.execute(insert(pull_authors).values(author_id=row.author_id, marked_at=utcnow())
                                     .on_conflict_do_nothing())
    timelines = Timelines(ctx.redis, settings.feed_timeline_size, settings.feed_timeline_ttl)
    async for followers in _audience(ctx, row.author_id):
        if push:
            await timelines.add(followers, row.id, row.created_at)
        await ctx.realtime.emit_to_users("post:new", view, followers)


async def broadcast(ctx: AppContext, post_id: str, author_id: str, privacy: str, event: str) -> None:
    """Emit `post:updated` (the current post) or `post:deleted` to the author and to the followers
    allowed to see the post."""
    author = uuid.UUID(author_id)
    if event == "post:updated":
        async with reads(ctx).connect() as session:
            row = (await session.execute(select_posts(None).where(posts.c.id == uuid.UUID(post_id)))).first()
        if row is None:
            return
        privacy, payload = row.privacy, (await post_views(ctx, [row]))[0]
    else:
        payload = PostRef(id=uuid.UUID(post_id), author_id=author)  # type: ignore[assignment]
    await ctx.realtime.emit_to_users(event, payload, [author])
    if privacy == "private":
        return
    async for followers in _audience(ctx, author):
        await ctx.realtime.emit_to_users(event, payload, followers)


fanout_task = TaskSpec(name="posts.fanout", queue="feed", fn=fanout, max_retries=5, time_limit_ms=300_000)
broadcast_task = TaskSpec(name="posts.broadcast", queue="feed", fn=broadcast, max_retries=3,
                          time_limit_ms=300_000)
TASKS = [fanout_task, broadcast_task]
