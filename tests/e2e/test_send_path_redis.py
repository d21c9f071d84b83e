"""The send path's Redis writes against a real Redis: rate-limit hits of concurrent callers each
counted once (also after Redis lost its scripts) and a change's stream copy as one script call."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from src.common.errors import RateLimited
from src.infra.ratelimit import RateLimiter
from src.modules.messaging.changes import STREAM_TTL, Entry, SyncStream, stream_key


async def test_concurrent_hits_count_each_once(redis_url: str) -> None:
    limiter = RateLimiter(redis_url)
    key = str(uuid.uuid4())
    outcomes = await asyncio.gather(*(limiter.hit("5/minute", "send", key) for _ in range(8)),
                                    return_exceptions=True)
    assert sum(o is None for o in outcomes) == 5
    refused = [o for o in outcomes if isinstance(o, RateLimited)]
    assert len(refused) == 3 and all(r.retry_after >= 1 for r in refused)
    with pytest.raises(RateLimited):  # the window is shared with later callers
        await limiter.hit("5/minute", "send", key)
    await limiter.hit("5/minute", "send", str(uuid.uuid4()))  # another key has its own window


async def test_hits_survive_a_script_flush(redis_url: str) -> None:
    limiter = RateLimiter(redis_url)
    key = str(uuid.uuid4())
    await limiter.hit("2/minute", "send", key)
    redis = Redis.from_url(redis_url)
    try:
        await redis.script_flush()  # as after a Redis restart: the script is loaded again, counts kept
    finally:
        await redis.aclose()
    await limiter.hit("2/minute", "send", key)
    with pytest.raises(RateLimited):
        await limiter.hit("2/minute", "send", key)


async def test_stream_append_groups_a_change_and_keeps_refusals_apart(redis_url: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        stream = SyncStream(redis)
        a, b, conversation = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await stream.append([Entry(a, 1, "message:new", conversation, '{"n":1}'),
                             Entry(b, 1, "message:new", conversation, '{"n":1}'),
                             Entry(a, 2, "conversation:updated", None, "{}")])
        # a's position 2 exists: its XADD is refused, b's still goes in
        await stream.append([Entry(a, 2, "message:new", conversation, '{"n":2}'),
                             Entry(b, 2, "message:new", conversation, '{"n":2}')])
        read_a, read_b = await stream.read(a, 0, 10), await stream.read(b, 0, 10)
        assert read_a is not None and read_b is not None
        assert [(e.position, e.type, e.conversation_id, e.payload) for e in read_a[0]] == [
            (1, "message:new", conversation, '{"n":1}'), (2, "conversation:updated", None, "{}")]
        assert [(e.position, e.payload) for e in read_b[0]] == [(1, '{"n":1}'), (2, '{"n":2}')]
        assert 0 < await redis.ttl(stream_key(a)) <= STREAM_TTL
        assert 0 < await redis.ttl(stream_key(b)) <= STREAM_TTL
    finally:
        await redis.aclose()
