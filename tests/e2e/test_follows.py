"""Follow / unfollow, followers and following lists, counters, blocks, replays and `follow:new`."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx

from src.common.events.base import decode_event
from src.common.events.blocks import UserBlocked
from src.common.events.follows import FollowCreated, UserFollowsRemoved
from src.infra.context import AppContext
from tests.e2e.harness import ApiProcess, EventRecorder, User, connect_socket, new_user, quiet_barrier, settled


async def counts(http: httpx.AsyncClient, user: User) -> tuple[int, int]:
    """(followers_count, following_count) on the user's own profile."""
    response = await http.get("/users/me", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["followers_count"], response.json()["following_count"]


async def listed(http: httpx.AsyncClient, viewer: User, user: User, which: str) -> list[str]:
    response = await http.get(f"/users/{user.id}/{which}", headers=viewer.headers, params={"limit": 100})
    assert response.status_code == 200, response.text
    return [item["user"]["id"] for item in response.json()["items"]]


def problem_code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    code: str = response.json()["code"]
    return code











async def outbox_count(db: asyncpg.Connection, name: str, follower: User, followee: User) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM infra.outbox WHERE name = $1 AND payload->>'follower_id' = $2"
        " AND payload->>'followee_id' = $3", name, follower.id, followee.id)
    return count


async def test_follow_unfollow_lists_and_counts(http: httpx.AsyncClient) -> None:
    ann, bob = await new_user(http), await new_user(http)

    first = await http.put(f"/users/{bob.id}/follow", headers=ann.headers)
    assert first.status_code == 200, first.text
    assert first.json()["follower_id"] == ann.id and first.json()["followee_id"] == bob.id
    again = await http.put(f"/users/{bob.id}/follow", headers=ann.headers)
    assert again.status_code == 200 and again.json()["created_at"] == first.json()["created_at"]

    assert await counts(http, bob) == (1, 0)
    assert await counts(http, ann) == (0, 1)
    profile = await http.get(f"/users/{bob.id}", headers=ann.headers)
    assert profile.json()["followers_count"] == 1
    followers = (await http.get(f"/users/{bob.id}/followers", headers=ann.headers)).json()
    assert followers["next_cursor"] is None
    [item] = followers["items"]
    assert item["user"]["id"] == ann.id and item["user"]["username"] and item["followed_at"]
    assert await listed(http, bob, ann, "following") == [bob.id]
    assert await listed(http, ann, ann, "followers") == []

    gone = await http.delete(f"/users/{bob.id}/follow", headers=ann.headers)
    assert gone.status_code == 204
    assert (await http.delete(f"/users/{bob.id}/follow", headers=ann.headers)).status_code == 204
    assert await counts(http, bob) == (0, 0)
    assert await counts(http, ann) == (0, 0)
    assert await listed(http, ann, bob, "followers") == []


async def test_follow_input_errors(http: httpx.AsyncClient) -> None:
    ann = await new_user(http)
    assert problem_code(await http.put(f"/users/{ann.id}/follow", headers=ann.headers), 400) == "cannot_follow_self"
    assert problem_code(await http.put(f"/users/{uuid.uuid4()}/follow", headers=ann.headers), 404) == "user_not_found"
    assert problem_code(await http.get(f"/users/{uuid.uuid4()}/followers", headers=ann.headers), 404) \
        == "user_not_found"
    assert problem_code(await http.get(f"/users/{ann.id}/followers", headers=ann.headers,
                                       params={"cursor": "not-a-cursor"}), 400) == "invalid_cursor"
    assert (await http.put(f"/users/{ann.id}/follow")).status_code == 401


async def test_lists_are_newest_first_and_paginated(http: httpx.AsyncClient) -> None:
    star = await new_user(http)
    fans = [await new_user(http) for _ in range(5)]
    for fan in fans:
        assert (await http.put(f"/users/{star.id}/follow", headers=fan.headers)).status_code == 200

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await http.get(f"/users/{star.id}/followers", headers=star.headers, params=params)).json()
        assert len(page["items"]) <= 2
        seen += [item["user"]["id"] for item in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [fan.id for fan in reversed(fans)]
    assert await counts(http, star) == (5, 0)


async def test_lists_are_hidden_like_the_profile(http: httpx.AsyncClient) -> None:
    ann, bob = await new_user(http), await new_user(http)
    assert (await http.put(f"/users/{ann.id}/follow", headers=bob.headers)).status_code == 200
    hidden = await http.patch("/privacy/settings", headers=ann.headers, json={"profile_visibility": "nobody"})
    assert hidden.status_code == 200, hidden.text
    for which in ("followers", "following"):
        assert problem_code(await http.get(f"/users/{ann.id}/{which}", headers=bob.headers), 404) == "user_not_found"
    assert await listed(http, ann, ann, "followers") == [bob.id]


async def test_concurrent_double_follow_leaves_one_edge(http: httpx.AsyncClient) -> None:
    ann, bob = await new_user(http), await new_user(http)
    responses = await asyncio.gather(*(http.put(f"/users/{bob.id}/follow", headers=ann.headers)
                                       for _ in range(8)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert len({r.json()["created_at"] for r in responses}) == 1
    assert await listed(http, ann, bob, "followers") == [ann.id]
    assert await counts(http, bob) == (1, 0)
    assert await counts(http, ann) == (0, 1)


async def test_blocks_refuse_follows_and_remove_them_both_ways(http: httpx.AsyncClient,
                                                               db: asyncpg.Connection) -> None:
    ann, bob, cat = await new_user(http), await new_user(http), await new_user(http)
    for follower, followee in ((ann, bob), (bob, ann), (cat, ann)):
        assert (await http.put(f"/users/{followee.id}/follow", headers=follower.headers)).status_code == 200
    assert await counts(http, ann) == (2, 1)

    assert (await http.put(f"/users/{bob.id}/block", headers=ann.headers)).status_code == 200
    assert await listed(http, ann, ann, "followers") == [cat.id]
    assert await listed(http, ann, ann, "following") == []
    await settled(db)  # the counters follow the cascade, off the request's path
    assert await counts(http, ann) == (1, 0)
    assert await counts(http, bob) == (0, 0)

    # The blocker is told why; the blocked user only sees an absent user.
    assert problem_code(await http.put(f"/users/{bob.id}/follow", headers=ann.headers), 403) == "blocked"
    assert problem_code(await http.put(f"/users/{ann.id}/follow", headers=bob.headers), 404) == "user_not_found"
    assert problem_code(await http.get(f"/users/{ann.id}/followers", headers=bob.headers), 404) \
        == "user_not_found"

    assert (await http.delete(f"/users/{bob.id}/block", headers=ann.headers)).status_code == 204
    assert (await http.put(f"/users/{ann.id}/follow", headers=bob.headers)).status_code == 200
    assert await counts(http, ann) == (2, 0)


async def test_deleted_user_leaves_the_others_counts_right(http: httpx.AsyncClient,
                                                           db: asyncpg.Connection) -> None:
    ann, bob, cat = await new_user(http), await new_user(http), await new_user(http)
    for follower, followee in ((ann, bob), (bob, cat), (cat, bob)):
        assert (await http.put(f"/users/{followee.id}/follow", headers=follower.headers)).status_code == 200
    deleted = await http.request("DELETE", "/users/me", headers=bob.headers,
                                 json={"password": "Correct-Horse-Battery-9"})
    assert deleted.status_code == 204, deleted.text
    await settled(db)
    assert await counts(http, ann) == (0, 0)
    assert await counts(http, cat) == (0, 0)
    assert await listed(http, cat, cat, "followers") == []


async def test_follow_created_delivered_twice_counts_once(http: httpx.AsyncClient, ctx: AppContext,
                                                          db: asyncpg.Connection) -> None:
    ann, bob = await new_user(http), await new_user(http)
    assert (await http.put(f"/users/{bob.id}/follow", headers=ann.headers)).status_code == 200
    row = await db.fetchrow(
        "SELECT name, payload FROM infra.outbox WHERE name = $1 AND payload->>'follower_id' = $2",
        FollowCreated.name, ann.id)
    published = decode_event(row["name"], json.loads(row["payload"]))

    # The API process already counted it: replays of the very same event change nothing.
    assert await ctx.bus.deliver(published) == []
    assert await ctx.bus.deliver(published) == []
    assert await counts(http, bob) == (1, 0)
    assert await counts(http, ann) == (0, 1)

    # A new event delivered twice counts once.
    cat = await new_user(http)
    fresh = FollowCreated(follower_id=uuid.UUID(cat.id), followee_id=uuid.UUID(bob.id))
    assert await ctx.bus.deliver(fresh) == []
    assert await ctx.bus.deliver(fresh) == []
    assert await counts(http, bob) == (2, 0)
    assert await counts(http, cat) == (0, 1)


async def test_user_blocked_delivered_twice_removes_edges_once(http: httpx.AsyncClient, ctx: AppContext,
                                                               db: asyncpg.Connection) -> None:
    ann, bob, cat = await new_user(http), await new_user(http), await new_user(http)
    for follower, followee in ((ann, bob), (bob, ann), (ann, cat)):
        assert (await http.put(f"/users/{followee.id}/follow", headers=follower.headers)).status_code == 200

    blocked = UserBlocked(blocker_id=uuid.UUID(ann.id), blocked_id=uuid.UUID(bob.id))
    assert await ctx.bus.deliver(blocked) == []
    assert await ctx.bus.deliver(blocked) == []

    assert await listed(http, ann, ann, "following") == [cat.id]
    assert await listed(http, ann, ann, "followers") == []
    assert await counts(http, ann) == (0, 1)
    assert await counts(http, bob) == (0, 0)
    assert await counts(http, cat) == (1, 0)
    deleted = "follows.follow_deleted.v1"
    assert await outbox_count(db, deleted, ann, bob) == 1
    assert await outbox_count(db, deleted, bob, ann) == 1
    assert await outbox_count(db, deleted, ann, cat) == 0


async def test_follow_new_reaches_the_followee_only(http: httpx.AsyncClient, api: ApiProcess,
                                                    db: asyncpg.Connection) -> None:
    ann, bob, cat = await new_user(http), await new_user(http), await new_user(http)
    bob_events, cat_events = EventRecorder(), EventRecorder()
    bob_socket = await connect_socket(api.base_url, bob.token, recorder=bob_events)
    cat_socket = await connect_socket(api.base_url, cat.token, recorder=cat_events)
    try:
        assert (await http.put(f"/users/{bob.id}/follow", headers=ann.headers)).status_code == 200
        payload = await bob_events.wait_for("follow:new")
        assert payload["user"]["id"] == ann.id and payload["followed_at"]
        # Following again is no new follower: no second event.
        assert (await http.put(f"/users/{bob.id}/follow", headers=ann.headers)).status_code == 200
        await quiet_barrier(http, db, bob.token, bob_events)
        assert len(bob_events.events["follow:new"]) == 1
        assert "follow:new" not in cat_events.events
    finally:
        await bob_socket.disconnect()
        await cat_socket.disconnect()


async def test_deleting_a_much_followed_account_publishes_one_event_and_counts_once(
        http: httpx.AsyncClient, ctx: AppContext, db: asyncpg.Connection) -> None:
    star, fan, idol = await new_user(http), await new_user(http), await new_user(http)
    assert (await http.put(f"/users/{star.id}/follow", headers=fan.headers)).status_code == 200
    assert (await http.put(f"/users/{idol.id}/follow", headers=star.headers)).status_code == 200
    # Hundreds more followers, written behind the API (with the counts the events would keep).
    crowd = [uuid.uuid4() for _ in range(500)]
    await db.executemany("INSERT INTO users.profiles (id, username, email, display_name, following_count) "
                         "VALUES ($1, $2, $3, $2, 1)", [(u, f"c{u.hex[:20]}", f"{u.hex}@x.io") for u in crowd])
    await db.executemany("INSERT INTO follows.follows (follower_id, followee_id) VALUES ($1, $2)",
                         [(u, uuid.UUID(star.id)) for u in crowd])

    deleted = await http.request("DELETE", "/users/me", headers=star.headers,
                                 json={"password": "Correct-Horse-Battery-9"})
    assert deleted.status_code == 204, deleted.text
    await settled(db)
    assert await counts(http, fan) == (0, 0)
    assert await counts(http, idol) == (0, 0)
    crowd_counts = await db.fetch("SELECT DISTINCT following_count FROM users.profiles WHERE id = ANY($1)", crowd)
    assert [r["following_count"] for r in crowd_counts] == [0]

    rows = await db.fetch("SELECT name, payload FROM infra.outbox WHERE name LIKE 'follows.%' "
                          "AND (payload->>'user_id' = $1 OR payload->>'follower_id' = $1 "
                          "OR payload->>'followee_id' = $1) AND name <> $2", star.id, FollowCreated.name)
    assert [r["name"] for r in rows] == [UserFollowsRemoved.name]
    event = decode_event(rows[0]["name"], json.loads(rows[0]["payload"]))
    assert await ctx.bus.deliver(event) == []  # a replay changes no count
    assert await counts(http, fan) == (0, 0)
    await db.execute("DELETE FROM users.profiles WHERE id = ANY($1)", crowd)
