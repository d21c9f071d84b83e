"""The feed's fast path (cached posts and viewer graphs): items are the same views as
`GET /posts/{id}`, and every change — edit, privacy, deletion, comment, reaction, block and
unblock, the reader's own new post — shows in the very next page, not after a cache expiry."""

from __future__ import annotations

from typing import Any

import httpx

from src.infra.context import AppContext
from tests.e2e.harness import User, WorkerProcess
from tests.e2e.posts_support import block, create_post, eventually, feed_ids, follow, ok, users


async def _page(http: httpx.AsyncClient, user: User, **params: Any) -> dict[str, Any]:
    return dict(ok(await http.get("/posts/feed", params=params, headers=user.headers)))


async def _warm(http: httpx.AsyncClient, ctx: AppContext, reader: User, post_ids: list[str]) -> None:
    """Wait for the timeline to hold these posts and read the feed until they are cached (or
    tombstoned: a post that just changed is read from PostgreSQL for a while)."""

    async def cached() -> bool:
        await _page(http, reader)
        keys = [f"feedpost:{p}" for p in post_ids]
        values = await ctx.redis.mget(keys)
        return await ctx.redis.exists(f"feed:{reader.id}") == 1 and all(values)

    await eventually(cached, what="posts cached")


async def test_feed_items_are_the_post_views(http: httpx.AsyncClient, ctx: AppContext, worker: WorkerProcess) -> None:
    reader, a = await users(http, 2)
    await follow(http, reader, a)
    made = [await create_post(http, a, privacy="followers" if i % 2 else "public", bg_color="#abcdef",
                              feelings="happy") for i in range(5)]
    ok(await http.put(f"/posts/{made[1]['id']}/reactions", json={"type": "love"}, headers=reader.headers))
    await _warm(http, ctx, reader, [p["id"] for p in made])
    page = await _page(http, reader, limit=3)
    second = await _page(http, reader, limit=3, cursor=page["next_cursor"])
    assert page["next_cursor"] and second["next_cursor"] is None
    items = page["items"] + second["items"]
    assert [i["id"] for i in items] == [p["id"] for p in reversed(made)]
    for item in items:
        assert item == ok(await http.get(f"/posts/{item['id']}", headers=reader.headers))
    assert items[3]["my_reaction"] == "love" and items[3]["reaction_counts"] == {"love": 1}


async def test_changes_show_in_the_next_page(http: httpx.AsyncClient, ctx: AppContext, worker: WorkerProcess) -> None:
    reader, a, b = await users(http, 3)
    await follow(http, reader, a)
    await follow(http, reader, b)
    pa = [await create_post(http, a) for _ in range(3)]
    pb = await create_post(http, b)
    await _warm(http, ctx, reader, [p["id"] for p in [*pa, pb]])

    def item(page: dict[str, Any], post_id: str) -> dict[str, Any]:
        return next(i for i in page["items"] if i["id"] == post_id)

    ok(await http.patch(f"/posts/{pa[0]['id']}", json={"body": "edited"}, headers=a.headers))
    assert item(await _page(http, reader), pa[0]["id"])["body"] == "edited"
    ok(await http.put(f"/posts/{pa[1]['id']}/reactions", json={"type": "wow"}, headers=reader.headers))
    got = item(await _page(http, reader), pa[1]["id"])
    assert got["my_reaction"] == "wow" and got["reaction_counts"] == {"wow": 1}
    ok(await http.delete(f"/posts/{pa[1]['id']}/reactions", headers=reader.headers), 204)
    got = item(await _page(http, reader), pa[1]["id"])
    assert got["my_reaction"] is None and got["reaction_counts"] == {}
    ok(await http.post(f"/posts/{pa[2]['id']}/comments", json={"body": "hi"}, headers=b.headers), 201)
    assert item(await _page(http, reader), pa[2]["id"])["comment_count"] == 1
    ok(await http.patch(f"/posts/{pa[2]['id']}", json={"privacy": "private"}, headers=a.headers))
    assert pa[2]["id"] not in await feed_ids(http, reader)
    ok(await http.delete(f"/posts/{pa[0]['id']}", headers=a.headers), 204)
    assert await feed_ids(http, reader) == [pb["id"], pa[1]["id"]]
    await block(http, reader, b)
    assert await feed_ids(http, reader) == [pa[1]["id"]]
    ok(await http.delete(f"/users/{b.id}/block", headers=reader.headers), 204)
    await follow(http, reader, b)  # a block ends the follow both ways
    assert pb["id"] in await feed_ids(http, reader)
    mine = await create_post(http, reader)
    assert (await feed_ids(http, reader))[0] == mine["id"]


async def test_a_flushed_redis_loses_no_change(http: httpx.AsyncClient, ctx: AppContext,
                                              worker: WorkerProcess) -> None:
    reader, a = await users(http, 2)
    await follow(http, reader, a)
    made = [await create_post(http, a) for _ in range(4)]
    await _warm(http, ctx, reader, [p["id"] for p in made])
    await ctx.redis.delete(f"feed:{reader.id}", f"feedgraph:{reader.id}",
                           *(f"feedpost:{p['id']}" for p in made))  # only this test's keys: Redis is shared
    ok(await http.delete(f"/users/{a.id}/follow", headers=reader.headers), 204)
    assert await feed_ids(http, reader) == []
    await follow(http, reader, a)

    async def all_back() -> bool:
        return await feed_ids(http, reader) == [p["id"] for p in reversed(made)]

    await eventually(all_back, what="feed rebuilt")
