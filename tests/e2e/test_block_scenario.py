"""Seed 002, "User A blocks User B", end to end over REST and sockets.

A and B are friends and follow each other; C follows A and has a pending friend request to A;
A's permissions towards B are cached as allowed. A blocks B: the friendship and both follows go,
the counts return to what they were, permissions are denied at once, A's devices hear
`block:changed` and B's socket hears nothing. A pending request (from D) goes with a block too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from src.bootstrap import MODULES
from src.modules.privacy.cache import perm_key
from tests.e2e.harness import ApiProcess, EventRecorder, auth_headers, connect_socket, quiet_barrier, settled, signup

pytestmark = pytest.mark.skipif(not {"follows", "friendship"} <= {m.name for m in MODULES},
                                reason="needs the follows and friendship modules")
ALL_ALLOWED = {"can_message": True, "can_call": True, "can_view_profile": True}
ALL_DENIED = dict.fromkeys(ALL_ALLOWED, False)


@pytest.fixture(scope="module")
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def uid(user: dict[str, Any]) -> str:
    return str(user["user"]["id"])


def h(user: dict[str, Any]) -> dict[str, str]:
    return auth_headers(user["access_token"])


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def counts(http: httpx.AsyncClient, user: dict[str, Any]) -> tuple[int, int]:
    me = await ok(await http.get("/users/me", headers=h(user)))
    return me["followers_count"], me["following_count"]


async def ids(http: httpx.AsyncClient, user: dict[str, Any], path: str, **params: Any) -> list[str]:
    page = await ok(await http.get(path, params=params, headers=h(user)))
    return [str(item["user"]["id"]) if item.get("user") else str(item["from_user_id"])
            for item in page["items"]]


async def befriend(http: httpx.AsyncClient, a: dict[str, Any], b: dict[str, Any]) -> None:
    sent = await ok(await http.post("/friends/requests", json={"user_id": uid(b)}, headers=h(a)), 201)
    await ok(await http.post(f"/friends/requests/{sent['id']}/accept", headers=h(b)))


async def test_a_blocks_b(http: httpx.AsyncClient, api: ApiProcess, redis: aioredis.Redis,
                          db: asyncpg.Connection) -> None:
    a, b, c, d = [await signup(http, display_name=name) for name in "ABCD"]
    await ok(await http.put(f"/users/{uid(a)}/follow", headers=h(c)))
    await ok(await http.post("/friends/requests", json={"user_id": uid(a)}, headers=h(c)), 201)
    counts_before = {"a": await counts(http, a), "b": await counts(http, b)}
    assert counts_before == {"a": (1, 0), "b": (0, 0)}

    await befriend(http, a, b)
    await ok(await http.put(f"/users/{uid(b)}/follow", headers=h(a)))
    await ok(await http.put(f"/users/{uid(a)}/follow", headers=h(b)))
    assert await counts(http, a) == (2, 1) and await counts(http, b) == (1, 1)
    assert await ids(http, a, "/friends") == [uid(b)]
    assert await ok(await http.get(f"/privacy/permissions/{uid(b)}", headers=h(a))) == ALL_ALLOWED
    assert await ok(await http.get(f"/privacy/permissions/{uid(a)}", headers=h(b))) == ALL_ALLOWED
    assert await redis.get(perm_key("message", a["user"]["id"], b["user"]["id"]))  # cached as allowed

    a_device, b_device = EventRecorder(), EventRecorder()
    # B first, so that A coming online is announced to B (a worker task); that announcement
    # precedes the block and is not what this test is about.
    sockets = [await connect_socket(api.base_url, b["access_token"], recorder=b_device),
               await connect_socket(api.base_url, a["access_token"], recorder=a_device)]
    try:
        await b_device.wait_for("presence", lambda p: p["user_id"] == uid(a) and p["online"])
        b_device.clear()
        await ok(await http.put(f"/users/{uid(b)}/block", headers=h(a)))

        # Permissions: denied at once, both ways, although "allowed" was cached a moment ago.
        assert await ok(await http.get(f"/privacy/permissions/{uid(b)}", headers=h(a))) == ALL_DENIED
        assert await ok(await http.get(f"/privacy/permissions/{uid(a)}", headers=h(b))) == ALL_DENIED
        # Friendship and follows gone both ways; counts back to what they were; C untouched.
        assert await ids(http, a, "/friends") == [] and await ids(http, b, "/friends") == []
        assert await ids(http, a, f"/users/{uid(a)}/followers") == [uid(c)]
        assert await ids(http, a, f"/users/{uid(a)}/following") == []
        assert await ids(http, b, f"/users/{uid(b)}/followers") == []
        assert await ids(http, b, f"/users/{uid(b)}/following") == []
        assert await ids(http, a, "/friends/requests", direction="incoming") == [uid(c)]
        # The counters follow once the cascade (off the request's path) has run.
        await settled(db)
        assert {"a": await counts(http, a), "b": await counts(http, b)} == counts_before
        # Profiles invisible both ways.
        for viewer, target in ((a, b), (b, a)):
            assert (await http.get(f"/users/{uid(target)}", headers=h(viewer))).status_code == 404
        # The blocker is told why (403 `blocked`); the blocked user just finds no such user (404).
        for response in (await http.put(f"/users/{uid(b)}/follow", headers=h(a)),
                         await http.post("/friends/requests", json={"user_id": uid(b)}, headers=h(a))):
            assert response.status_code == 403 and response.json()["code"] == "blocked"
        for response in (await http.put(f"/users/{uid(a)}/follow", headers=h(b)),
                         await http.post("/friends/requests", json={"user_id": uid(a)}, headers=h(b))):
            assert response.status_code == 404 and response.json()["code"] == "user_not_found"

        # Sockets: A's device hears block:changed; B's hears nothing at all.
        assert await a_device.wait_for("block:changed") == {"user_id": uid(b), "blocked": True}
        await quiet_barrier(http, db, b["access_token"], b_device)
        assert set(b_device.events) == {"block:changed"}  # only the marker
        assert len(b_device.events["block:changed"]) == 1
    finally:
        for sock in sockets:
            await sock.disconnect()

    # A pending request between the two goes with a block as well.
    await ok(await http.post("/friends/requests", json={"user_id": uid(a)}, headers=h(d)), 201)
    assert set(await ids(http, a, "/friends/requests", direction="incoming")) == {uid(c), uid(d)}
    await ok(await http.put(f"/users/{uid(d)}/block", headers=h(a)))
    assert await ids(http, a, "/friends/requests", direction="incoming") == [uid(c)]
    assert await ids(http, d, "/friends/requests", direction="outgoing") == []

    # Unblocking restores nothing that was removed, but the two may reach each other again.
    await ok(await http.delete(f"/users/{uid(b)}/block", headers=h(a)), 204)
    assert await ok(await http.get(f"/privacy/permissions/{uid(b)}", headers=h(a))) == ALL_ALLOWED
    assert await ids(http, a, "/friends") == []
    assert await counts(http, b) == (0, 0)
    await ok(await http.put(f"/users/{uid(a)}/follow", headers=h(b)))
    assert await counts(http, a) == (2, 0)
