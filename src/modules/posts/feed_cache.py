"""The caches of the feed's fast path (`GET /posts/feed`), so that a page costs one Redis round
trip, one PostgreSQL statement and the assembly of pre-encoded JSON.

- `PostCache` (Redis `feedpost:{id}`): each post's view as pre-encoded JSON without its
  viewer-specific parts (`author` profile, `my_reaction`), prefixed with the author and the
  privacy the feed's filter needs. Filled by readers with SET NX; every change of a post (edit,
  deletion, comment or reaction count) overwrites the entry with a tombstone for
  `TOMBSTONE_SECONDS`, so a reader that read the post from PostgreSQL before the change cannot
  put the old version back (its SET NX fails). Posts carrying media are never cached (their
  media views change as processing ends); they are read from PostgreSQL every time.
- `ViewerCache` (in process): a viewer's follow and block sets, the time of their newest post and
  (up to MAX_CACHED_REACTIONS) their reactions, valid while the viewer's graph token in Redis
  (`feedgraph:{id}`) is unchanged. The token is read in the same round trip as the timeline
  (before any PostgreSQL read); follows, unfollows, blocks, unblocks, the viewer's new posts and
  reactions delete it (inline listeners, in the request that made the change), so the next read
  loads it all again. A flushed Redis loses the token, which makes a new one: never a stale hit.
- `ProfileCache` (in process): authors' public profiles as JSON for FEED_PROFILE_CACHE_SECONDS.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from src.common.queries.users import GetProfiles
from src.infra.context import AppContext
from src.modules.posts.script_batch import ScriptBatcher
from src.modules.posts.timeline import key_of
from src.modules.posts.visibility import Viewer

POST_PREFIX = "feedpost:"
TOMBSTONE = "-"
TOMBSTONE_SECONDS = 30


def graph_key(user_id: uuid.UUID | str) -> str:
    return f"feedgraph:{user_id}"


class CachedPost(msgspec.Struct):
    """`PostView` without `author` and `my_reaction` (added per page, per viewer)."""

    id: uuid.UUID
    author_id: uuid.UUID
    body: str | None
    bg_color: str | None
    feelings: str | None
    gif_url: str | None
    media_ids: list[uuid.UUID]
    media: list[Any]
    privacy: str
    comment_count: int
    reaction_counts: dict[str, int]
    created_at: Any
    edited_at: Any


_encoder = msgspec.json.Encoder()


def fragment_of(row: Any, media: list[Any]) -> str:
    """A post's JSON object without its closing brace (the page appends `author`, `my_reaction`)."""
    view = CachedPost(
        id=row.id, author_id=row.author_id, body=row.body, bg_color=row.bg_color, feelings=row.feelings,
        gif_url=row.gif_url, media_ids=list(row.media_ids), media=media, privacy=row.privacy,
        comment_count=row.comment_count, reaction_counts={k: v for k, v in row.reaction_counts.items() if v > 0},
        created_at=row.created_at, edited_at=row.edited_at)
    return _encoder.encode(view)[:-1].decode()


# KEYS: the timeline, the viewer's graph token. ARGV: max score, how many entries, timeline TTL,
# a new token (used when none exists), post key prefix.
# Returns {0} for a missing timeline, else {size, token, {member, score (integer), ...}, {cached post or false, ...}}.
_READ = """
local size = redis.call('ZCARD', KEYS[1])
if size == 0 then return {0} end
redis.call('EXPIRE', KEYS[1], ARGV[3])
local rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], 1, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local token = redis.call('GET', KEYS[2])
if not token then
  token = ARGV[4]
  redis.call('SET', KEYS[2], token, 'EX', ARGV[3])
end
local bodies, keys = {}, {}
local function flush()
  if #keys > 0 then
    for _, v in ipairs(redis.call('MGET', unpack(keys))) do bodies[#bodies + 1] = v end
    keys = {}
  end
end
for i = 1, #rows, 2 do
  keys[#keys + 1] = ARGV[5] .. rows[i]
  rows[i + 1] = tonumber(rows[i + 1])  -- an integer reply: scores are whole microseconds
  if #keys == 200 then flush() end
end
flush()
return {size, token, rows, bodies}
"""


@dataclass(slots=True)
class TimelineRead:
    """What one read of a timeline brought back."""

    stored: int  # entries without the sentinel
    token: str  # the viewer's graph token
    entries: list[tuple[str, int]]  # (post id, score) newest first
    bodies: list[str | None]  # the cached post of each entry (None: not cached or tombstoned)


class PostCache:
    """Timeline reads with their cached posts; fills and tombstones of cached posts."""

    def __init__(self, redis: Redis, ttl: int, timeline_ttl: int) -> None:
        self._redis, self._ttl, self._timeline_ttl = redis, ttl, timeline_ttl
        self._read = ScriptBatcher(redis, _READ)  # concurrent pages' reads in one pipeline

    async def read(self, viewer_id: uuid.UUID, max_score: int | None, count: int) -> TimelineRead | None:
        """Up to `count` timeline entries with score <= max_score and their cached posts, and the
        viewer's graph token; None when the timeline is missing."""
        reply = await self._read([key_of(viewer_id), graph_key(viewer_id)], [
            "+inf" if max_score is None else max_score, count, self._timeline_ttl, secrets.token_hex(8),
            POST_PREFIX])
        if not reply or not reply[0]:
            return None
        size, token, rows, bodies = reply
        entries = list(zip(rows[0::2], rows[1::2], strict=True))
        return TimelineRead(max(int(size) - 1, 0), token, entries,
                            [None if b is None or b == TOMBSTONE else b for b in bodies])

    async def fill(self, entries: Iterable[tuple[str, str]]) -> None:
        """Cache posts read from PostgreSQL (unless changed meanwhile: a tombstone stays)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for post_id, value in entries:
                pipe.set(POST_PREFIX + post_id, value, nx=True, ex=self._ttl)
            await pipe.execute()

    async def tombstone(self, post_ids: Iterable[uuid.UUID], forget_graph_of: uuid.UUID | None = None) -> None:
        """These posts changed: drop their cached versions and keep readers from caching them
        again for `TOMBSTONE_SECONDS` (and with `forget_graph_of`, drop that user's graph token)."""
        keys = [POST_PREFIX + str(p) for p in post_ids]
        if not keys and forget_graph_of is None:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, TOMBSTONE, ex=TOMBSTONE_SECONDS)
            if forget_graph_of is not None:
                pipe.delete(graph_key(forget_graph_of))
            await pipe.execute()

    async def forget_graph(self, user_ids: Iterable[uuid.UUID]) -> None:
        """These users' follows or blocks changed: their next feed read loads them again."""
        keys = [graph_key(u) for u in user_ids]
        if keys:
            await self._redis.delete(*keys)


def cached_value(author_id: uuid.UUID, privacy: str, fragment: str) -> str:
    """The `feedpost:` value: what the feed filters on, then the JSON fragment."""
    return f"{author_id}|{privacy}|{fragment}"


def parse_value(value: str) -> tuple[str, str, str]:
    """(author id, privacy, fragment) of a `feedpost:` value."""
    author, privacy, fragment = value.split("|", 2)
    return author, privacy, fragment


@dataclass(frozen=True, slots=True)
class FeedViewer:
    """What the feed needs to know about a viewer, cached under the viewer's graph token (which
    follows, blocks, the viewer's own posts and reactions drop). Ids as text: compact, and what
    Redis hands back."""

    id: uuid.UUID
    authors: frozenset[str]  # the viewer and followed authors not blocked either way
    own_latest: int | None  # score of the viewer's newest post (None: no posts)
    reactions: dict[str, str] | None  # post id -> the viewer's reaction type; None: too many to keep

    @classmethod
    def of(cls, viewer: Viewer, own_latest: int | None, reactions: dict[str, str] | None) -> FeedViewer:
        assert viewer.id is not None
        return cls(viewer.id, frozenset(str(a) for a in viewer.feed_authors), own_latest, reactions)


class ViewerCache:
    """The newest `size` viewers' graphs, each valid under one graph token."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[uuid.UUID, tuple[str, FeedViewer]] = OrderedDict()

    def get(self, viewer_id: uuid.UUID, token: str) -> FeedViewer | None:
        entry = self._entries.get(viewer_id)
        if entry is None or entry[0] != token:
            return None
        self._entries.move_to_end(viewer_id)
        return entry[1]

    def put(self, viewer_id: uuid.UUID, token: str, viewer: FeedViewer) -> None:
        if self._size <= 0:
            return
        self._entries[viewer_id] = (token, viewer)
        self._entries.move_to_end(viewer_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


class ProfileCache:
    """Authors' public profiles as JSON text, kept `seconds` in this process."""

    MAX_ENTRIES = 50_000

    def __init__(self, ctx: AppContext, seconds: float) -> None:
        self._ctx, self._seconds = ctx, seconds
        self._entries: dict[str, tuple[float, str]] = {}

    async def json_of(self, author_ids: set[str]) -> dict[str, str]:
        """Each author's profile JSON (`null` for a deleted or unknown author)."""
        now = time.monotonic()
        found: dict[str, str] = {}
        missing: list[uuid.UUID] = []
        for key in author_ids:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                found[key] = entry[1]
            else:
                missing.append(uuid.UUID(key))
        if missing:
            profiles = await self._ctx.queries.ask(GetProfiles(user_ids=missing))
            if len(self._entries) > self.MAX_ENTRIES:
                self._entries.clear()
            until = now + self._seconds
            for author in missing:
                profile = profiles.get(author)
                text = _encoder.encode(profile).decode() if profile is not None else "null"
                found[str(author)] = text
                if self._seconds > 0:
                    self._entries[str(author)] = (until, text)
        return found
