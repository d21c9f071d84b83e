"""`GET /posts/feed`: own and followed authors' visible posts, newest first, keyset by
(created_at, id) so a cursor stays exact while new posts arrive.

Where posts come from: authors with up to FEED_FANOUT_MAX_FOLLOWERS followers are pushed into
each follower's capped Redis timeline by the `posts.fanout` worker task; the reader's own posts
and those of bigger authors (`pull_authors`) are pulled from PostgreSQL and merged.

A page's fast path (feed_cache.py): one Redis script reads the timeline entries, the posts'
pre-encoded JSON and the viewer's graph token; the viewer's follow and block sets come from the
process's cache while that token holds, with the viewer's newest own post and reactions; one
PostgreSQL statement, only when the page needs it, brings the posts not cached, the pulled
authors' posts and (for a viewer with many) the reactions; the page is assembled from the JSON
fragments. Every candidate is filtered by the current graph (followed, not blocked either
way) and its current privacy, and every change of a post replaces its cached version, so an
unfollow, a block, a privacy change or a deletion takes effect at once whatever the timeline
still holds. A missing
timeline (never built, expired, Redis flushed) is served from PostgreSQL alone — the same answer,
slower — while one background rebuild runs; a capped timeline hands over to PostgreSQL below
its oldest entry.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgspec
import structlog
from sqlalchemy import and_, func, or_, select

from src.common.pagination import clamp_limit, decode_time_cursor, encode_cursor, time_position
from src.common.queries.media import GetMediaViews
from src.infra.context import AppContext
from src.infra.redis import REDIS_ERRORS
from src.modules.posts.feed_cache import (
    FeedViewer,
    PostCache,
    ProfileCache,
    TimelineRead,
    ViewerCache,
    cached_value,
    fragment_of,
    parse_value,
)
from src.modules.posts.models import posts, pull_authors
from src.modules.posts.schemas import REACTION_TYPES
from src.modules.posts.timeline import Timelines, key_of, score_of
from src.modules.posts.views import POST_SQL_COLUMNS, PostRow, reads
from src.modules.posts.visibility import Viewer, in_ids, load_viewer

log = structlog.get_logger("chatty.posts.feed")
Position = tuple[datetime, uuid.UUID]
_TRIES = 4
# How long a process trusts its copy of `pull_authors`. An author who just crossed the fan-out
# threshold may miss other processes' feeds for this long (creating a post refreshes the copy of
# the process that marked them).
BIG_AUTHORS_TTL = 5.0
REFRESH_GRACE = 1.0  # seconds the expiring copy serves while one page reads it again


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
# The fast path's one statement: the viewer's reactions on cached posts ($2; rows with a null
# privacy), then the newest rows among uncached timeline posts ($3) and pulled authors' posts ($4).
_REACTIONS = ("(SELECT r.post_id, NULL::uuid, NULL::text, NULL::varchar, NULL::varchar, NULL::varchar, "
              "NULL::uuid[], NULL::varchar, NULL::int, NULL::jsonb, NULL::timestamptz, NULL::timestamptz, r.type "
              "FROM posts.reactions r WHERE r.user_id = $1 AND r.post_id = ANY($2::uuid[])) UNION ALL (")
_MERGE = {
    False: _REACTIONS + _SELECT + "(p.id = ANY($3::uuid[]) OR p.author_id = ANY($4::uuid[]))" + _ORDER + "$5)",
    True: _REACTIONS + _SELECT + "(p.id = ANY($3::uuid[]) OR p.author_id = ANY($4::uuid[])) "
                                 "AND (p.created_at, p.id) < ($5, $6)" + _ORDER + "$7)",
}
# A viewer's newest own post and reactions (kept with the cached graph when there are at most
# MAX_CACHED_REACTIONS; more are read per page).
MAX_CACHED_REACTIONS = 500
_OWN_LATEST = ("SELECT p.created_at FROM posts.posts p WHERE p.author_id = $1 "
               "ORDER BY p.created_at DESC, p.id DESC LIMIT 1")
_GIVEN = "SELECT r.post_id, r.type FROM posts.reactions r WHERE r.user_id = $1 LIMIT $2"
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
    authors past the fan-out threshold). When the copy expires, one page reads it again while the
    others keep the expiring copy for that read's few milliseconds: 32 pages in flight each reading
    it stalled them all every 5 s (bench/feed.py)."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._ids: frozenset[uuid.UUID] = frozenset()
        self._until = 0.0
        self._usable = False  # `_ids` may serve while a refresh is on its way (not after `forget`)
        self._refreshing_until = 0.0
        self._generation = 0  # bumped by `forget`: a read begun before it is not kept

    async def get(self) -> frozenset[uuid.UUID]:
        now = time.monotonic()
        if now < self._until or (self._usable and now < self._refreshing_until):
            return self._ids
        self._refreshing_until = now + REFRESH_GRACE
        generation = self._generation
        try:
            ids = await self.read_ids()
        finally:
            self._refreshing_until = 0.0
        if generation == self._generation:
            self._ids, self._until, self._usable = ids, now + BIG_AUTHORS_TTL, True
        return ids

    def forget(self) -> None:
        """Read the table again next time (this process just marked an author)."""
        self._generation += 1
        self._until = self._refreshing_until = 0.0
        self._usable = False

    async def read_ids(self) -> frozenset[uuid.UUID]:
        """The table as it is now."""
        async with reads(self._ctx).connect() as conn:
            return frozenset((await conn.scalars(select(pull_authors.c.author_id))).all())


class _Item(NamedTuple):
    """A post on its way into a page: its JSON fragment and the viewer's reaction."""

    score: int  # created_at in µs (the timeline's score)
    id: str  # the post's id (canonical text sorts like the uuid)
    author: str
    fragment: str
    reaction: str | None


def _newest_first(item: _Item) -> tuple[int, str]:
    return item.score, item.id


def time_of(score: int) -> datetime:
    """The creation time behind a score (exact: both are microseconds)."""
    return _EPOCH + timedelta(microseconds=score)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REACTION_JSON = {t: f'"{t}"' for t in REACTION_TYPES}
_encoder = msgspec.json.Encoder()


class FeedService:
    """Reads the feed; rebuilds lost timelines in the background."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        settings = ctx.settings
        self.timelines = Timelines(ctx.redis, settings.feed_timeline_size, settings.feed_timeline_ttl)
        self._rebuilding: set[asyncio.Task[None]] = set()
        self.big_authors = BigAuthors(ctx)
        self.cache = PostCache(ctx.redis, settings.feed_post_cache_ttl, settings.feed_timeline_ttl)
        self.viewers = ViewerCache(settings.feed_viewer_cache_size)
        self.profiles = ProfileCache(ctx, settings.feed_profile_cache_seconds)

    async def feed(self, viewer_id: uuid.UUID, limit: int | None, cursor: str | None) -> bytes:
        """One page of the viewer's feed, as the JSON of a `Page[PostView]`."""
        size = clamp_limit(limit)
        position = decode_time_cursor(cursor)
        items: list[_Item] | None = None
        try:
            items = await self._fast(viewer_id, position, size + 1)
        except REDIS_ERRORS as exc:
            log.warning("feed.redis_unavailable", error=repr(exc))
        if items is None:  # PostgreSQL alone (no timeline yet, or Redis unavailable)
            viewer = await load_viewer(self._ctx, viewer_id)
            rows = await self._query(viewer, None, position, size + 1)
            items = await self._items_of_rows(rows, fill=False)
        return await self._page_json(items, size)

    async def _page_json(self, items: list[_Item], size: int) -> bytes:
        """The page's JSON, assembled from the posts' pre-encoded fragments."""
        page = items[:size]
        profiles = await self.profiles.json_of({i.author for i in page})
        parts = [f'{i.fragment},"author":{profiles.get(i.author, "null")},"my_reaction":'
                 f'{_REACTION_JSON.get(i.reaction or "", "null")}}}' for i in page]
        next_cursor = "null"
        if len(items) > size:
            last = page[-1]
            cursor = encode_cursor(time_position(time_of(last.score), uuid.UUID(last.id)))
            next_cursor = _encoder.encode(cursor).decode()
        return f'{{"items":[{",".join(parts)}],"next_cursor":{next_cursor}}}'.encode()

    async def _fast(self, viewer_id: uuid.UUID, position: Position | None, count: int) -> list[_Item] | None:
        """`count` items merged from the timeline (cached posts) and the pulled authors, or None
        when PostgreSQL must answer alone (a missing timeline: a rebuild is started)."""
        max_score = score_of(position[0]) if position else None
        want = count + 4  # a few spare for entries filtered out
        for _ in range(_TRIES):
            read = await self.cache.read(viewer_id, max_score, want)
            if read is None:
                self._start_rebuild(await load_viewer(self._ctx, viewer_id))
                return None
            fv = self.viewers.get(viewer_id, read.token)
            if fv is None:
                fv = await self._load_feed_viewer(viewer_id)
                self.viewers.put(viewer_id, read.token, fv)
            big = await self.big_authors.get()
            pulled = [viewer_id, *(a for a in big if str(a) in fv.authors and a != viewer_id)]
            exhausted = len(read.entries) < want
            merged = await self._merge(fv, read, pulled, position, count)
            if exhausted and read.stored < self.timelines.cap:
                return merged  # the timeline holds every pushed post: complete
            # Exact down to the oldest entry read; below it the timeline may lack posts.
            floor = read.entries[-1][1] if read.entries else None
            good = [i for i in merged if floor is None or i.score >= floor]
            if len(good) >= count:
                return good[:count]
            if exhausted:  # capped timeline used up: PostgreSQL continues below what we have
                rest_from = (time_of(good[-1].score), uuid.UUID(good[-1].id)) if good else position
                viewer = await load_viewer(self._ctx, viewer_id)  # rare: only below a capped timeline
                rest = await self._query(viewer, None, rest_from, count - len(good))
                return good + await self._items_of_rows(rest, fill=True)
            want *= 4  # filtered entries left the page short: read further
        return None

    async def _load_feed_viewer(self, viewer_id: uuid.UUID) -> FeedViewer:
        """The viewer's graph, newest own post and (when few) reactions, from PostgreSQL."""
        viewer, own, given = await asyncio.gather(
            load_viewer(self._ctx, viewer_id), self._ctx.db.fetchrow(_OWN_LATEST, viewer_id),
            self._ctx.db.fetch(_GIVEN, viewer_id, MAX_CACHED_REACTIONS + 1))
        reactions = {str(r[0]): r[1] for r in given} if len(given) <= MAX_CACHED_REACTIONS else None
        return FeedViewer.of(viewer, score_of(own[0]) if own else None, reactions)

    async def _merge(self, fv: FeedViewer, read: TimelineRead, pulled: list[uuid.UUID], position: Position | None,
                     count: int) -> list[_Item]:
        """The newest `count` feed items among the timeline entries read and the pulled authors'
        posts: cached posts as they are; the rest, and the viewer's reactions when the viewer's
        cached graph does not hold them all, from one statement, run only when needed."""
        viewer_str = str(fv.id)
        below = (score_of(position[0]), str(position[1])) if position else None
        reactions = fv.reactions
        hits: dict[str, _Item] = {}
        misses: list[str] = []
        for (post_id, score), value in zip(read.entries, read.bodies, strict=True):
            if below is not None and (score, post_id) >= below:
                continue
            if value is None:
                misses.append(post_id)
                continue
            author, privacy, fragment = parse_value(value)
            if author in fv.authors and (privacy != "private" or author == viewer_str):
                hits[post_id] = _Item(score, post_id, author, fragment,
                                      reactions.get(post_id) if reactions is not None else None)
        if not misses and (reactions is not None or not hits) and not self._may_pull(fv, pulled, hits, count):
            return sorted(hits.values(), key=_newest_first, reverse=True)[:count]
        args: list[Any] = [fv.id, list(hits) if reactions is None else [], misses, pulled]
        if position is not None:
            args.extend(position)
        records = await self._ctx.db.fetch(_MERGE[position is not None], *args, count + len(misses))
        rows: list[PostRow] = []
        for r in records:
            if r[7] is None:  # a reaction of the viewer on a cached post
                key = str(r[0])
                hit = hits.get(key)
                if hit is not None:
                    hits[key] = hit._replace(reaction=r[12])
            elif str(r[1]) in fv.authors:
                rows.append(PostRow(*r))
        for item in await self._items_of_rows(rows, fill=True):
            hits.setdefault(item.id, item)
        return sorted(hits.values(), key=_newest_first, reverse=True)[:count]

    @staticmethod
    def _may_pull(fv: FeedViewer, pulled: list[uuid.UUID], hits: dict[str, _Item], count: int) -> bool:
        """Whether pulled posts could enter the page: a followed big author, or the viewer's own
        newest post not older than the page's oldest cached post."""
        if len(pulled) > 1:
            return True
        if fv.own_latest is None:
            return False
        if len(hits) < count:
            return True
        return fv.own_latest >= sorted(i.score for i in hits.values())[-count]

    async def _items_of_rows(self, rows: list[PostRow], *, fill: bool) -> list[_Item]:
        """Feed items of rows read from PostgreSQL (media views asked for when some carry media);
        with `fill`, posts without media go into the cache."""
        media_ids = [m for r in rows for m in r.media_ids]
        media = await self._ctx.queries.ask(GetMediaViews(media_ids=media_ids)) if media_ids else {}
        items = [_Item(score_of(r.created_at), str(r.id), str(r.author_id),
                       fragment_of(r, [media[m] for m in r.media_ids if m in media]), r.my_reaction) for r in rows]
        if fill:
            try:
                await self.cache.fill((i.id, cached_value(r.author_id, r.privacy, i.fragment))
                                      for r, i in zip(rows, items, strict=True) if not r.media_ids)
            except REDIS_ERRORS as exc:
                log.warning("feed.cache_fill_failed", error=repr(exc))
        return items

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
