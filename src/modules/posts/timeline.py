"""Capped Redis timelines `feed:{user_id}`: post ids scored by creation time (µs since epoch).

A built timeline always holds the sentinel member `^` with score 0, so "built and empty" and
"lost or never built" differ: writers add only to timelines that exist (a missing timeline is
rebuilt from PostgreSQL by the reader), and trimming keeps rank 0 (the sentinel). Every key
has a TTL; Redis errors are the caller's cue to read PostgreSQL instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from redis.asyncio import Redis

SENTINEL = "^"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# KEYS: timelines; ARGV: score, member, cap. Adds to the timelines that exist, then trims them.
# A full timeline holds exactly the newest `cap` pushed posts; a late fan-out of a post older than
# all of them (a backlog, a rebuild in between) would leave a hole above it, so it is skipped.
_ADD = """
local cap = tonumber(ARGV[3])
local score = tonumber(ARGV[1])
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    local full = redis.call('ZCARD', key) - 1 >= cap
    local oldest = redis.call('ZRANGE', key, 1, 1, 'WITHSCORES')
    if not (full and oldest[2] and score < tonumber(oldest[2])) then
      redis.call('ZADD', key, score, ARGV[2])
      redis.call('ZREMRANGEBYRANK', key, 1, -(cap + 2))
      n = n + 1
    end
  end
end
return n
"""


def score_of(at: datetime) -> int:
    """A post's score: microseconds since the epoch (exact in a double until the year 2255)."""
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def key_of(user_id: uuid.UUID | str) -> str:
    return f"feed:{user_id}"


class Timelines:
    """Reads and writes of the capped timelines."""

    def __init__(self, redis: Redis, cap: int, ttl: int) -> None:
        self._redis, self.cap, self._ttl = redis, cap, ttl
        self._add = redis.register_script(_ADD)

    async def add(self, user_ids: Iterable[uuid.UUID], post_id: uuid.UUID, created_at: datetime) -> int:
        """Add a post to the existing timelines of these users; how many got it."""
        keys = [key_of(u) for u in user_ids]
        if not keys:
            return 0
        return int(await self._add(keys=keys, args=[score_of(created_at), str(post_id), self.cap]))

    async def remove(self, user_id: uuid.UUID, post_ids: Iterable[uuid.UUID]) -> None:
        members = [str(p) for p in post_ids]
        if members:
            await self._redis.zrem(key_of(user_id), *members)

    async def drop(self, user_id: uuid.UUID) -> None:
        """Forget a timeline (its owner's next read rebuilds it)."""
        await self._redis.delete(key_of(user_id))

    async def write(self, user_id: uuid.UUID, entries: list[tuple[uuid.UUID, datetime]]) -> None:
        """Replace a timeline with these entries (newest `cap` kept) and the sentinel."""
        mapping: dict[str, float] = {str(p): score_of(at) for p, at in entries}
        mapping[SENTINEL] = 0
        key = key_of(user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.zadd(key, mapping)
            pipe.zremrangebyrank(key, 1, -(self.cap + 2))
            pipe.expire(key, self._ttl)
            await pipe.execute()

    async def read(self, user_id: uuid.UUID, max_score: int | None, count: int) -> tuple[bool, list[tuple[str, int]],
                                                                                          int]:
        """(built, up to `count` (post id, score) newest first with score <= max_score, size
        without the sentinel). Refreshes the TTL of a built timeline."""
        key = key_of(user_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrevrangebyscore(key, "+inf" if max_score is None else max_score, 1, start=0, num=count,
                                  withscores=True)
            pipe.zcard(key)
            pipe.expire(key, self._ttl)
            rows, size, _ = await pipe.execute()
        return size > 0, [(m, int(s)) for m, s in rows], max(size - 1, 0)
