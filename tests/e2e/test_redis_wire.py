"""The lean Redis connection of the tick pipeline (src/infra/redis_tick.py) against a real Redis:
replies in order and decoded as the client decodes them, errors per command, the client's
database, a lost connection failing what is in flight and the next call reconnecting, and the
rate limit and stream copy through it after Redis lost its scripts."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from src.common.errors import RateLimited
from src.infra.ratelimit import RateLimiter
from src.infra.redis import create_redis
from src.infra.redis_tick import run_script, tick_pipeline
from src.modules.messaging.changes import Entry, SyncStream, stream_key


def _db_url(redis_url: str, db: int) -> str:
    return redis_url.rsplit("/", 1)[0] + f"/{db}" if redis_url.count("/") > 2 else f"{redis_url}/{db}"


async def test_replies_in_order_decoded_and_errors_per_command(redis_url: str) -> None:
    redis = create_redis(_db_url(redis_url, 3))
    try:
        key = f"wire:{uuid.uuid4()}"
        await redis.set(key, "été")
        sha = await redis.script_load("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) * 2}")
        tick = tick_pipeline(redis)
        replies = await asyncio.gather(
            tick.call(lambda pipe: pipe.mget([key, f"{key}:missing"])),
            tick.call(lambda pipe: pipe.evalsha(sha, 1, "k", 1.5, 21)),
            tick.call(lambda pipe: pipe.evalsha("0" * 40, 0)),
            tick.call(lambda pipe: pipe.eval("return redis.call('INCR', KEYS[1])", 1, key)),
            tick.call(lambda pipe: pipe.mget(key)),
            return_exceptions=True)
        assert replies[0] == ["été", None]  # the client's database (3) and its decoding
        assert replies[1] == ["k", "1.5", 42]
        assert isinstance(replies[2], NoScriptError)
        assert isinstance(replies[3], ResponseError) and not isinstance(replies[3], NoScriptError)
        assert replies[4] == ["été"]  # an error does not shift the later replies
    finally:
        await redis.aclose()


# A whole second of wall time: TIME's seconds alone would end the loop at the next second's
# turn, which can come within the 0.1 s the test waits before cutting the connection.
_BUSY_FOR_A_SECOND = """
local function now() local t = redis.call('TIME'); return t[1] * 1000000 + t[2] end
local start = now()
while now() - start < 1000000 do end
return 1
"""


async def test_a_lost_connection_fails_what_is_in_flight_then_reconnects(redis_url: str) -> None:
    redis = create_redis(redis_url)
    try:
        tick = tick_pipeline(redis)
        assert await tick.call(lambda pipe: pipe.mget("anything")) == [None]
        wire = tick._wire
        assert wire is not None
        blocked = asyncio.ensure_future(tick.call(lambda pipe: pipe.eval(_BUSY_FOR_A_SECOND, 0)))
        await asyncio.sleep(0.1)
        assert wire.transport is not None
        wire.transport.abort()  # as when Redis goes away mid-command
        with pytest.raises(RedisConnectionError):
            await blocked
        await asyncio.sleep(1.5)  # Redis finishes the script
        assert await tick.call(lambda pipe: pipe.mget("anything")) == [None]
        assert tick._wire is not wire
    finally:
        await redis.aclose()


async def test_scripts_run_again_after_redis_lost_them(redis_url: str) -> None:
    redis = create_redis(redis_url)
    try:
        limiter = RateLimiter(redis_url, redis)  # the shared client: hits go on the lean connection
        key = str(uuid.uuid4())
        await limiter.hit("2/minute", "send", key)
        await redis.script_flush()  # as after a Redis restart
        await limiter.hit("2/minute", "send", key)  # NOSCRIPT: `limits` loads it, the count is kept
        with pytest.raises(RateLimited):
            await limiter.hit("2/minute", "send", key)

        user = uuid.uuid4()
        stream = SyncStream(redis)
        await stream.append([Entry(user, 1, "message:new", None, "{}")])
        await redis.script_flush()
        await stream.append([Entry(user, 2, "message:new", None, "{}")])  # NOSCRIPT: loaded again
        assert [entry_id for entry_id, _ in await redis.xrange(stream_key(user))] == ["1-1", "2-1"]

        script = redis.register_script("return ARGV[1] .. KEYS[1]")
        await redis.script_flush()
        assert await run_script(script, keys=["b"], args=["a"]) == "ab"  # EVAL loads it
        assert await run_script(script, keys=["d"], args=["c"]) == "cd"  # then EVALSHA
    finally:
        await redis.aclose()
