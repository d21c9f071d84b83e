"""`/sync`: a client that was away gets exactly what it missed, in order and once, from the Redis
stream or, when Redis lost or reordered it, from PostgreSQL; pages chain; bad cursors are refused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from src.common.pagination import decode_cursor, encode_cursor
from tests.e2e.harness import ApiProcess
from tests.e2e.messaging_support import (
    User,
    call,
    device,
    h,
    ok,
    open_direct,
    problem,
    send,
    uid,
    users,
)


@pytest.fixture(scope="module")
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def sync(http: httpx.AsyncClient, user: User, cursor: str | None = None, **params: Any) -> dict[str, Any]:
    query = {"cursor": cursor, **params} if cursor else params
    return dict(ok(await http.get("/sync", params=query, headers=h(user))))


async def sync_all(http: httpx.AsyncClient, user: User, cursor: str, limit: int = 100) -> list[dict[str, Any]]:
    """Follow the pages from `cursor` to the end."""
    items: list[dict[str, Any]] = []
    while True:
        page = await sync(http, user, cursor, limit=limit)
        items += page["items"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return items


async def away_scenario(http: httpx.AsyncClient, api: ApiProcess) -> tuple[User, str, str, list[dict[str, Any]]]:
    """b is offline while a sends three messages, edits one and b's friend reacts; (b, cursor, cid, sent)."""
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    async with device(api.base_url, b) as (sock, events):
        first = await send(http, a, cid, "seen live")
        await events.wait_for("message:new", lambda m: m["id"] == first["id"])
        await call(sock, "message:read", {"conversation_id": cid, "up_to_seq": first["seq"]})
        cursor = (await sync(http, b))["next_cursor"]  # the head, after the initial fetch
    sent = [await send(http, a, cid, f"missed {i}") for i in range(3)]
    ok(await http.patch(f"/conversations/{cid}/messages/{sent[0]['id']}", json={"body": "missed 0 (edited)"},
                        headers=h(a)))
    ok(await http.put(f"/conversations/{cid}/messages/{sent[1]['id']}/reactions/🔥", headers=h(a)))
    return b, cursor, cid, sent


def expect_missed(items: list[dict[str, Any]], cid: str, sent: list[dict[str, Any]]) -> None:
    assert [i["type"] for i in items] == ["message:new"] * 3 + ["message:updated", "message:reaction"]
    assert [i["data"]["id"] for i in items[:3]] == [m["id"] for m in sent]
    assert [i["data"]["seq"] for i in items[:3]] == [2, 3, 4]
    assert items[3]["data"]["id"] == sent[0]["id"] and items[3]["data"]["body"] == "missed 0 (edited)"
    assert items[4]["data"]["message_id"] == sent[1]["id"] and items[4]["data"]["reactions"] == {"🔥": 1}
    assert all(i["conversation_id"] == cid for i in items)
    positions = [i["position"] for i in items]
    assert positions == list(range(positions[0], positions[0] + len(items)))


async def test_without_a_cursor_sync_answers_the_head(http: httpx.AsyncClient) -> None:
    a, b = await users(http, 2)
    empty = await sync(http, a)
    assert empty["items"] == [] and empty["has_more"] is False
    cid = (await open_direct(http, a, b))["id"]
    await send(http, b, cid, "hi")
    head = await sync(http, a)
    assert head["items"] == [] and head["next_cursor"] != empty["next_cursor"]
    assert (await sync(http, a, head["next_cursor"]))["items"] == []
    missed = await sync(http, a, empty["next_cursor"])
    assert [i["type"] for i in missed["items"]] == ["conversation:updated", "message:new"]
    # The same log position; the group window's start (`x`, an xmin) moves with any transaction.
    assert decode_cursor(missed["next_cursor"])["p"] == decode_cursor(head["next_cursor"])["p"]  # type: ignore[index]


async def test_sync_returns_exactly_what_was_missed_in_order(http: httpx.AsyncClient, api: ApiProcess) -> None:
    b, cursor, cid, sent = await away_scenario(http, api)
    page = await sync(http, b, cursor)
    expect_missed(page["items"], cid, sent)
    assert page["has_more"] is False
    assert (await sync(http, b, page["next_cursor"]))["items"] == []  # once
    assert (await sync(http, b, cursor))["items"] == page["items"]  # a cursor can be replayed


async def test_sync_is_served_from_postgres_when_the_stream_is_gone(http: httpx.AsyncClient, api: ApiProcess,
                                                                    redis: aioredis.Redis) -> None:
    b, cursor, cid, sent = await away_scenario(http, api)
    from_stream = (await sync(http, b, cursor))["items"]
    assert await redis.xlen(f"sync:{uid(b)}") >= 5
    await redis.delete(f"sync:{uid(b)}")
    from_postgres = (await sync(http, b, cursor))["items"]
    assert from_postgres == from_stream
    expect_missed(from_postgres, cid, sent)


async def test_recent_changes_are_served_from_the_stream(http: httpx.AsyncClient, api: ApiProcess,
                                                        migrated_db: str) -> None:
    b, cursor, _, _ = await away_scenario(http, api)
    expected = (await sync(http, b, cursor))["items"]
    conn = await asyncpg.connect(migrated_db)
    try:  # white box: without the PostgreSQL rows, only the stream can answer
        rows = await conn.fetch("DELETE FROM messaging.changes WHERE user_id = $1 AND position > $2 RETURNING *",
                                uuid.UUID(uid(b)), decode_cursor(cursor)["p"])  # type: ignore[index]
        assert len(rows) == 5
        assert (await sync(http, b, cursor))["items"] == expected
    finally:
        await conn.executemany(
            "INSERT INTO messaging.changes (user_id, position, type, conversation_id, payload, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            [(r["user_id"], r["position"], r["type"], r["conversation_id"], r["payload"], r["created_at"])
             for r in rows])
        await conn.close()


async def test_a_hole_in_the_stream_is_read_from_postgres(http: httpx.AsyncClient, api: ApiProcess,
                                                          redis: aioredis.Redis) -> None:
    b, cursor, cid, sent = await away_scenario(http, api)
    entries = await redis.xrange(f"sync:{uid(b)}")
    lost = entries[-3][0]  # as if this XADD had lost a race with a later one
    await redis.xdel(f"sync:{uid(b)}", lost)
    expect_missed(await sync_all(http, b, cursor), cid, sent)
    expect_missed(await sync_all(http, b, cursor, limit=2), cid, sent)


async def test_sync_pages_chain_without_gaps_or_repeats(http: httpx.AsyncClient, api: ApiProcess) -> None:
    b, cursor, cid, sent = await away_scenario(http, api)
    first = await sync(http, b, cursor, limit=2)
    assert len(first["items"]) == 2 and first["has_more"] is True
    items = await sync_all(http, b, cursor, limit=2)
    expect_missed(items, cid, sent)


async def test_malformed_cursors_are_refused(http: httpx.AsyncClient) -> None:
    (a,) = await users(http, 1)
    for cursor in ("not-a-cursor!!", encode_cursor({"x": 1}), encode_cursor({"p": "1"}), encode_cursor({"p": -1}),
                   encode_cursor({"p": 10**6})):
        problem(await http.get("/sync", params={"cursor": cursor}, headers=h(a)), 400, "invalid_cursor")
    problem(await http.get("/sync", params={"limit": 0}, headers=h(a)), 400, "validation_failed")


async def test_a_cursor_older_than_the_retained_history_is_gone(http: httpx.AsyncClient, redis: aioredis.Redis,
                                                                migrated_db: str) -> None:
    a, b = await users(http, 2)
    start = (await sync(http, b))["next_cursor"]
    cid = (await open_direct(http, a, b))["id"]
    for i in range(3):
        await send(http, a, cid, f"old {i}")
    conn = await asyncpg.connect(migrated_db)
    try:  # what the retention job does to rows past the retention period
        await conn.execute("DELETE FROM messaging.changes WHERE user_id = $1 AND position <= 2", uuid.UUID(uid(b)))
    finally:
        await conn.close()
    await redis.delete(f"sync:{uid(b)}")
    problem(await http.get("/sync", params={"cursor": start}, headers=h(b)), 410, "cursor_expired")
    head = (await sync(http, b))["next_cursor"]
    assert (await sync(http, b, head))["items"] == []  # a fresh start works
