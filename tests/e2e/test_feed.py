"""The feed: newest first across authors, exact keyset pages while posts arrive, unfollow and block
take posts out, a flushed timeline is rebuilt while reads stay correct, capped timelines hand over
to PostgreSQL, and a real worker fans a post out to 5,000 followers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import asyncpg
import httpx

from src.infra.context import AppContext
from tests.e2e.harness import ApiProcess, User, WorkerProcess, settled
from tests.e2e.posts_support import block, create_post, eventually, feed_ids, follow, ok, users


async def _timeline_built(ctx: AppContext, user: User) -> bool:
    return bool(await ctx.redis.exists(f"feed:{user.id}"))


async def test_feed_is_own_and_followed_newest_first(http: httpx.AsyncClient, worker: WorkerProcess) -> None:
    reader, a, b, other = await users(http, 4)
    await follow(http, reader, a)
    await follow(http, reader, b)
    made = []
    for author in (a, reader, b, a, other, b):
        made.append((author, await create_post(http, author)))
    expected = [p["id"] for author, p in reversed(made) if author is not other]
    assert (await feed_ids(http, reader, limit=2)) == expected


async def test_pagination_across_concurrent_inserts_has_no_duplicates_or_gaps(
        http: httpx.AsyncClient, ctx: AppContext, worker: WorkerProcess) -> None:
    reader, a, b = await users(http, 3)
    await follow(http, reader, a)
    await follow(http, reader, b)
    before = [await create_post(http, a if i % 2 else b) for i in range(30)]
    await feed_ids(http, reader)  # builds the timeline; later pages read it
    await eventually(lambda: _timeline_built(ctx, reader), what="timeline rebuilt")
    seen: list[str] = []
    cursor = None
    inserts = asyncio.gather(*(create_post(http, a if i % 2 else b) for i in range(20)))
    while True:
        params: dict[str, object] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = ok(await http.get("/posts/feed", params=params, headers=reader.headers))
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    newer = await inserts
    old_ids = [p["id"] for p in reversed(before)]
    new_ids = {p["id"] for p in newer}
    assert len(seen) == len(set(seen)), "duplicates"
    # New posts are newer than any cursor: only the first page may hold some of them.
    assert [i for i in seen if i not in new_ids] == old_ids, "gap or disorder"

    async def all_there() -> bool:  # the new posts arrive once the worker fanned them out
        return set(await feed_ids(http, reader)) == set(old_ids) | new_ids

    await eventually(all_there, what="every post in the feed")


async def test_unfollow_and_block_take_posts_out(http: httpx.AsyncClient, worker: WorkerProcess) -> None:
    reader, a, b = await users(http, 3)
    await follow(http, reader, a)
    await follow(http, reader, b)
    pa, pb = await create_post(http, a), await create_post(http, b)
    assert set(await feed_ids(http, reader)) == {pa["id"], pb["id"]}
    ok(await http.delete(f"/users/{a.id}/follow", headers=reader.headers), 204)
    assert await feed_ids(http, reader) == [pb["id"]]
    await block(http, b, reader)
    assert await feed_ids(http, reader) == []


async def test_feed_correct_after_redis_loses_the_timeline(http: httpx.AsyncClient, ctx: AppContext,
                                                           worker: WorkerProcess) -> None:
    reader, a = await users(http, 2)
    await follow(http, reader, a)
    made = [await create_post(http, a, privacy="followers" if i % 2 else "public") for i in range(12)]
    expected = [p["id"] for p in reversed(made)]
    assert await feed_ids(http, reader, limit=5) == expected
    await eventually(lambda: _timeline_built(ctx, reader), what="timeline rebuilt")
    late = await create_post(http, a)
    expected.insert(0, late["id"])
    await eventually(lambda: _in_timeline(ctx, reader, late["id"]), what="fan-out of the late post")
    await ctx.redis.delete(f"feed:{reader.id}")  # only this reader's keys: the Redis is shared
    assert await feed_ids(http, reader, limit=5) == expected  # from PostgreSQL meanwhile
    await eventually(lambda: _timeline_built(ctx, reader), what="timeline rebuilt again")
    assert await _in_timeline(ctx, reader, late["id"])
    assert await feed_ids(http, reader, limit=5) == expected


async def _in_timeline(ctx: AppContext, user: User, post_id: str) -> bool:
    return await ctx.redis.zscore(f"feed:{user.id}", post_id) is not None


async def test_a_capped_timeline_hands_over_to_postgresql(http: httpx.AsyncClient, ctx: AppContext,
                                                          db: asyncpg.Connection,
                                                          api_factory: Callable[..., ApiProcess],
                                                          worker: WorkerProcess) -> None:
    small = api_factory(FEED_TIMELINE_SIZE="10", FEED_FANOUT_MAX_FOLLOWERS="1")
    reader, witness, a, b = await users(http, 4)
    for user in (reader, witness):
        await follow(http, user, a)
        await follow(http, user, b)
    await settled(db)  # a follow drops the timeline after commit: not after it was built below
    assert await feed_ids(http, witness) == []
    await eventually(lambda: _timeline_built(ctx, witness), what="witness timeline built")
    made = [await create_post(http, a if i % 3 else b) for i in range(25)]

    async def fanned_out() -> bool:  # the worker (cap 800) is done before the small API rebuilds
        return await ctx.redis.zcard(f"feed:{witness.id}") == 26

    await eventually(fanned_out, what="fan-out of 25 posts")
    async with httpx.AsyncClient(base_url=small.base_url + "/api/v1", timeout=15) as client:
        assert await feed_ids(client, reader, limit=4) == [p["id"] for p in reversed(made)]
        await eventually(lambda: _timeline_built(ctx, reader), what="timeline rebuilt")
        assert await feed_ids(client, reader, limit=3) == [p["id"] for p in reversed(made)]
        # b outgrows fan-out on this API (2 followers > 1): their posts are pulled at read time.
        await follow(http, (await users(http, 1))[0], b)
        pulled = await create_post(client, b)
        assert (await feed_ids(client, reader, limit=5))[0] == pulled["id"]


async def test_a_post_reaches_five_thousand_followers_through_the_worker(
        http: httpx.AsyncClient, ctx: AppContext, db: asyncpg.Connection, worker: WorkerProcess) -> None:
    author, *readers = await users(http, 4)
    for reader in readers:
        await follow(http, reader, author)
        assert await feed_ids(http, reader) == []
        await eventually(lambda r=reader: _timeline_built(ctx, r), what="reader timeline built")
    silent = [uuid.uuid4() for _ in range(5000 - len(readers))]
    await db.copy_records_to_table("follows", schema_name="follows", columns=["follower_id", "followee_id"],
                                   records=[(f, uuid.UUID(author.id)) for f in silent])
    async with ctx.redis.pipeline(transaction=False) as pipe:  # built, empty timelines for them all
        for follower in silent:
            pipe.zadd(f"feed:{follower}", {"^": 0})
            pipe.expire(f"feed:{follower}", 600)
        await pipe.execute()
    try:
        post = await create_post(http, author, privacy="followers")

        async def everyone_has_it() -> bool:
            async with ctx.redis.pipeline(transaction=False) as pipe:
                for follower in silent:
                    pipe.zscore(f"feed:{follower}", post["id"])
                return all(s is not None for s in await pipe.execute())

        await eventually(everyone_has_it, timeout=60, what="fan-out to 5,000 followers")
        for reader in readers:
            assert await feed_ids(http, reader) == [post["id"]]
    finally:
        await db.execute("DELETE FROM follows.follows WHERE followee_id = $1", uuid.UUID(author.id))
        await ctx.redis.delete(*[f"feed:{f}" for f in silent])


async def test_the_plain_path_and_the_framework_answer_alike(http: httpx.AsyncClient, worker: WorkerProcess) -> None:
    """A plain request is answered past Litestar's handler layers (feed_route.py); one with any other
    parameter goes through Litestar: the same pages, cursors and errors either way."""
    reader, author = await users(http, 2)
    await follow(http, reader, author)
    for _ in range(5):
        await create_post(http, author)
    await feed_ids(http, reader)  # the timeline is built from here on

    async def page(params: dict[str, str], headers: dict[str, str] | None = None) -> httpx.Response:
        return await http.get("/posts/feed", params=params, headers=reader.headers if headers is None else headers)

    plain, framework = await page({"limit": "2"}), await page({"limit": "2", "other": "x"})
    assert plain.status_code == framework.status_code == 200
    assert plain.headers["content-type"] == framework.headers["content-type"] == "application/json"
    assert plain.json() == framework.json() and len(plain.json()["items"]) == 2
    cursor = plain.json()["next_cursor"]
    assert (await page({"cursor": cursor, "limit": "2"})).json() == (
        await page({"cursor": cursor, "limit": "2", "other": "x"})).json()
    for params, code in (({"limit": "0"}, "validation_failed"), ({"cursor": "zzz"}, "invalid_cursor")):
        refused = await page(params)
        assert (refused.status_code, refused.json()["code"]) == (400, code)
    assert (await page({}, headers={})).json()["code"] == "unauthorized"
    assert (await page({}, headers={"Authorization": "Bearer nope"})).json()["code"] == "invalid_token"
