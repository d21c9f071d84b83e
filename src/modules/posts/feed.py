"""`GET /posts/feed`: own and followed authors' visible posts, newest first, keyset by
(created_at, id) so a cursor stays exact while new posts arrive.

Where posts come from: authors with up to FEED_FANOUT_MAX_FOLLOWERS followers are pushed into
each follower's capped Redis timeline by the `posts.fanout` worker task; the reader's own posts
and those of bigger authors (`pull_authors`) are pulled from PostgreSQL and merged. Every
candidate is re-read from PostgreSQL through the visibility predicate, so an unfollow, a block, a
privacy change or a deletion takes effect at once whatever the timeline still holds. A missing
timeline (never built, expired, Redis flushed) is served from PostgreSQL alone — the same answer,
slower — while one background rebuild runs; a capped timeline hands over to PostgreSQL below
its oldest entry.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, func, or_, select

from src.common.pagination import Page, clamp_limit, decode_time_cursor, encode_cursor, time_position
from src.infra.context import AppContext
from src.infra.redis import REDIS_ERRORS
from src.modules.posts.models import posts, pull_authors
from src.modules.posts.schemas import PostView
from src.modules.posts.timeline import Timelines, key_of, score_of
from src.modules.posts.views import POST_SQL_COLUMNS, PostRow, post_views, reads
from src.modules.posts.visibility import Viewer, in_ids, load_viewer

log = structlog.get_logger("chatty.posts.feed")
Position = tuple[datetime, uuid.UUID]
_TRIES = 4
# How long a process trusts its copy of `pull_authors`. An author who just crossed the fan-out
# threshold may miss other processes' feeds for this long (creating a post refreshes the copy of
# the process that marked them).
BIG_AUTHORS_TTL = 5.0


def feed_predicate(viewer: Viewer) -> Any:
    """Posts that belong in the viewer's feed and that the viewer may see (written as one author
    list so PostgreSQL can use the per-author index)."""
    assert viewer.id is not None
    return and_(in_ids(posts.c.author_id, [viewer.id, *viewer.followed_unblocked]),
                or_(posts.c.author_id == viewer.id, posts.c.privacy != "private"))


# The feed's reads in SQL text, run by asyncpg directly (SQLAlchemy's statement building and
# execution cost more CPU than the query). $1 is the viewer.
# - every feed author's posts (`feed_predicate`; $2 the feed authors): no timeline to start from;
# - timeline candidates ($2) and pulled authors' posts ($3): the author test is done in Python
#   (`_visible_in_feed`): as an `= ANY(500 followees)` filter it cost PostgreSQL milliseconds a page.
_SELECT = f"SELECT {POST_SQL_COLUMNS} FROM posts.posts p WHERE (p.author_id = $1 OR p.privacy <> 'private') AND "
_ORDER = " ORDER BY p.created_at DESC, p.id DESC LIMIT "
_QUERIES = {
    (False, False): _SELECT + "p.author_id = ANY($2::uuid[])" + _ORDER + "$3",
    (False, True): _SELECT + "p.author_id = ANY($2::uuid[]) AND (p.created_at, p.id) < ($3, $4)" + _ORDER + "$5",
    (True, False): _SELECT + "(p.id = ANY($2::uuid[]) OR p.author_id = ANY($3::uuid[]))" + _ORDER + "$4",
    (True, True): _SELECT + "(p.id = ANY($2::uuid[]) OR p.author_id = ANY($3::uuid[])) "
                            "AND (p.created_at, p.id) < ($4, $5)" + _ORDER + "$6",
}


def pushed_authors(viewer: Viewer) -> Any:
    """Followed authors whose posts are fanned out (not in `pull_authors`)."""
    return and_(in_ids(posts.c.author_id, viewer.followed_unblocked),
                posts.c.author_id.not_in(select(pull_authors.c.author_id)), posts.c.privacy != "private")


class BigAuthors:
    """`pull_authors`, cached in the process for BIG_AUTHORS_TTL seconds (a small table: only
    authors past the fan-out threshold)."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._ids: frozenset[uuid.UUID] = frozenset()
        self._until = 0.0

    async def get(self) -> frozenset[uuid.UUID]:
        now = time.monotonic()
        if now >= self._until:
            async with reads(self._ctx).connect() as conn:
                self._ids = frozenset((await conn.scalars(select(pull_authors.c.author_id))).all())
            self._until = now + BIG_AUTHORS_TTL
        return self._ids

    def forget(self) -> None:
        """Read the table again next time (this process just marked an author)."""
        self._until = 0.0


def _pos(row: Any) -> Position:
    return row.created_at, row.id


class FeedService:
    """Reads the feed; rebuilds lost timelines in the background."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        settings = ctx.settings
        self.timelines = Timelines(ctx.redis, settings.feed_timeline_size, settings.feed_timeline_ttl)
        self._rebuilding: set[asyncio.Task[None]] = set()
        self.big_authors = BigAuthors(ctx)

    async def feed(self, viewer_id: uuid.UUID, limit: int | None, cursor: str | None) -> Page[PostView]:
        """One page of the viewer's feed."""
        size = clamp_limit(limit)
        position = decode_time_cursor(cursor)
        viewer = await load_viewer(self._ctx, viewer_id)
        rows: list[Any] | None = None
        try:
            rows = await self._from_timeline(viewer, position, size + 1)
        except REDIS_ERRORS as exc:
            log.warning("feed.redis_unavailable", error=repr(exc))
        if rows is None:
            rows = await self._query(viewer, None, position, size + 1)
        items = rows[:size]
        next_cursor = encode_cursor(time_position(*_pos(items[-1]))) if len(rows) > size else None
        return Page(items=await post_views(self._ctx, items), next_cursor=next_cursor)

    async def _query(self, viewer: Viewer, merged: tuple[list[uuid.UUID], list[uuid.UUID]] | None,
                     position: Position | None, count: int) -> list[PostRow]:
        """Feed posts newest first below `position`; with `merged` (timeline ids, pulled authors)
        only those posts and those authors' posts."""
        assert viewer.id is not None
        args: list[Any] = [viewer.id]
        if merged is None:
            args.append([viewer.id, *viewer.followed_unblocked])
        else:
            args.extend(merged)
        if position is not None:
            args.extend(position)
        if merged is None:
            rows = await self._ctx.db.fetch(_QUERIES[False, position is not None], *args, count)
            return [PostRow(*r) for r in rows]
        # Only timeline candidates can fail the author test: read that many more.
        rows = await self._ctx.db.fetch(_QUERIES[True, position is not None], *args, count + len(merged[0]))
        authors = viewer.feed_authors
        return [PostRow(*r) for r in rows if r[1] in authors][:count]

    async def _from_timeline(self, viewer: Viewer, position: Position | None, count: int) -> list[Any] | None:
        """`count` rows merged from the timeline and the pulled authors, or None when the timeline
        is missing (a rebuild is started) and PostgreSQL must answer alone."""
        assert viewer.id is not None
        max_score = score_of(position[0]) if position else None
        big = await self.big_authors.get()
        pulled = [viewer.id, *(a for a in viewer.followed_unblocked if a in big)]
        want = count * 2
        for _ in range(_TRIES):
            built, entries, stored = await self.timelines.read(viewer.id, max_score, want)
            if not built:
                self._start_rebuild(viewer)
                return None
            exhausted = len(entries) < want
            ids = [uuid.UUID(m) for m, _ in entries]
            # One query for both sources (a post in both comes once).
            merged = await self._query(viewer, (ids, pulled), position, count)
            if exhausted and stored < self.timelines.cap:
                return merged  # the timeline holds every pushed post: complete
            # Exact down to the oldest entry read; below it the timeline may lack posts.
            floor = entries[-1][1] if entries else None
            good = [r for r in merged if floor is None or score_of(r.created_at) >= floor]
            if len(good) >= count:
                return good[:count]
            if exhausted:  # capped timeline used up: PostgreSQL continues below what we have
                rest_from = _pos(good[-1]) if good else position
                rest = await self._query(viewer, None, rest_from, count - len(good))
                return good + rest
            want *= 4  # filtered entries left the page short: read further
        return None

    def _start_rebuild(self, viewer: Viewer) -> None:
        task = asyncio.create_task(self.rebuild(viewer))
        self._rebuilding.add(task)
        task.add_done_callback(self._rebuilding.discard)

    async def rebuild(self, viewer: Viewer) -> None:
        """Rebuild a lost timeline from PostgreSQL (one builder at a time per user)."""
        assert viewer.id is not None
        lock = key_of(viewer.id) + ":building"
        try:
            if not await self._ctx.redis.set(lock, "1", nx=True, ex=30):
                return
            latest = (select(posts.c.id, posts.c.created_at).where(pushed_authors(viewer))
                      .order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(self.timelines.cap))
            async with reads(self._ctx).connect() as session:
                rows = (await session.execute(latest)).all()
            await self.timelines.write(viewer.id, [(r.id, r.created_at) for r in rows])
            # A post fanned out between our read and our write skipped the missing timeline:
            # read the last minute's again now that the timeline exists (later ones get added).
            again = latest.where(posts.c.created_at >= func.now() - timedelta(minutes=1))
            async with reads(self._ctx).connect() as session:
                for row in (await session.execute(again)).all():
                    await self.timelines.add([viewer.id], row.id, row.created_at)
            await self._ctx.redis.delete(lock)
        except Exception as exc:  # the feed stays correct from PostgreSQL; the next read retries
            log.warning("feed.rebuild_failed", user_id=str(viewer.id), error=repr(exc))
