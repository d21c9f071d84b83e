"""Blocks over the real API: block, unblock, list, profile invisibility, socket events, account deletion."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx

from src.common.events.base import decode_event
from src.infra.context import AppContext
from tests.e2e.harness import ApiProcess, EventRecorder, auth_headers, connect_socket, quiet_barrier, settled, signup


def uid(user: dict[str, Any]) -> str:
    return str(user["user"]["id"])


def h(user: dict[str, Any]) -> dict[str, str]:
    return auth_headers(user["access_token"])


async def block_count(db: asyncpg.Connection, blocker: str, blocked: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM blocks.blocks WHERE blocker_id = $1 AND blocked_id = $2",
                                 uuid.UUID(blocker), uuid.UUID(blocked)))


async def published(db: asyncpg.Connection, name: str, blocker: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM infra.outbox WHERE name = $1 AND payload->>'blocker_id' = $2",
                                 name, blocker))


async def test_block_is_idempotent_and_listed_with_profile(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    a, b = await signup(http), await signup(http, display_name="Bee")
    first = await http.put(f"/users/{uid(b)}/block", headers=h(a))
    again = await http.put(f"/users/{uid(b)}/block", headers=h(a))
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert first.json()["user"] == {"id": uid(b), "username": b["user"]["username"], "display_name": "Bee",
                                    "avatar_url": None}
    assert await block_count(db, uid(a), uid(b)) == 1
    assert await published(db, "blocks.user_blocked.v1", uid(a)) == 1  # only the real change publishes

    listed = (await http.get("/blocks", headers=h(a))).json()
    assert [item["user"]["id"] for item in listed["items"]] == [uid(b)]
    assert listed["next_cursor"] is None
    assert (await http.get("/blocks", headers=h(b))).json()["items"] == []  # one-way in who did it

    assert (await http.delete(f"/users/{uid(b)}/block", headers=h(a))).status_code == 204
    assert (await http.delete(f"/users/{uid(b)}/block", headers=h(a))).status_code == 204
    assert await published(db, "blocks.user_unblocked.v1", uid(a)) == 1
    assert (await http.get("/blocks", headers=h(a))).json()["items"] == []


async def test_block_refuses_yourself_unknown_users_and_strangers(http: httpx.AsyncClient) -> None:
    a = await signup(http)
    self_block = await http.put(f"/users/{uid(a)}/block", headers=h(a))
    assert self_block.status_code == 400
    assert self_block.json()["code"] == "cannot_block_self"
    unknown = await http.put(f"/users/{uuid.uuid4()}/block", headers=h(a))
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "user_not_found"
    assert (await http.put(f"/users/{uid(a)}/block")).status_code == 401
    assert (await http.get("/blocks")).status_code == 401
    bad = await http.get("/blocks", params={"cursor": "not-a-cursor"}, headers=h(a))
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_cursor"


async def test_blocks_list_is_paginated_newest_first(http: httpx.AsyncClient) -> None:
    a = await signup(http)
    others = [await signup(http) for _ in range(3)]
    for other in others:
        assert (await http.put(f"/users/{uid(other)}/block", headers=h(a))).status_code == 200
    page1 = (await http.get("/blocks", params={"limit": 2}, headers=h(a))).json()
    page2 = (await http.get("/blocks", params={"limit": 2, "cursor": page1["next_cursor"]}, headers=h(a))).json()
    assert [i["user"]["id"] for i in page1["items"] + page2["items"]] == [uid(o) for o in reversed(others)]
    assert page1["next_cursor"] and page2["next_cursor"] is None


async def test_profiles_are_invisible_both_ways_while_blocked(http: httpx.AsyncClient) -> None:
    a, b = await signup(http), await signup(http)
    assert (await http.get(f"/users/{uid(b)}", headers=h(a))).status_code == 200
    await http.put(f"/users/{uid(b)}/block", headers=h(a))
    for viewer, target in ((a, b), (b, a)):
        hidden = await http.get(f"/users/{uid(target)}", headers=h(viewer))
        assert hidden.status_code == 404
        assert hidden.json()["code"] == "user_not_found"
    assert (await http.get(f"/users/{uid(a)}", headers=h(a))).status_code == 200  # your own, always
    assert (await http.put(f"/users/{uid(a)}/block", headers=h(b))).status_code == 200  # both may block
    await http.delete(f"/users/{uid(b)}/block", headers=h(a))
    assert (await http.get(f"/users/{uid(b)}", headers=h(a))).status_code == 404  # b's block still holds
    await http.delete(f"/users/{uid(a)}/block", headers=h(b))
    assert (await http.get(f"/users/{uid(b)}", headers=h(a))).status_code == 200
    assert (await http.get(f"/users/{uid(a)}", headers=h(b))).status_code == 200


async def test_block_changed_reaches_only_the_blockers_devices(http: httpx.AsyncClient, api: ApiProcess,
                                                               db: asyncpg.Connection) -> None:
    a, b = await signup(http), await signup(http)
    second = (await http.post("/auth/signin", json={"login": a["user"]["username"], "password": a["password"]}))
    phone, laptop, bee = EventRecorder(), EventRecorder(), EventRecorder()
    sockets = [await connect_socket(api.base_url, a["access_token"], recorder=phone),
               await connect_socket(api.base_url, second.json()["access_token"], recorder=laptop),
               await connect_socket(api.base_url, b["access_token"], recorder=bee)]
    try:
        await http.put(f"/users/{uid(b)}/block", headers=h(a))
        await http.put(f"/users/{uid(b)}/block", headers=h(a))  # no change, no second event
        for device in (phone, laptop):
            assert await device.wait_for("block:changed") == {"user_id": uid(b), "blocked": True}
        await http.delete(f"/users/{uid(b)}/block", headers=h(a))
        for device in (phone, laptop):
            await device.wait_for("block:changed", lambda p: p["blocked"] is False)
        await quiet_barrier(http, db, a["access_token"], phone)
        assert phone.events["block:changed"][:2] == [{"user_id": uid(b), "blocked": True},
                                                     {"user_id": uid(b), "blocked": False}]
        assert len(phone.events["block:changed"]) == 3  # and the marker
        await quiet_barrier(http, db, b["access_token"], bee)
        assert len(bee.events["block:changed"]) == 1  # the blocked user is never told (only its marker)
    finally:
        for sock in sockets:
            await sock.disconnect()


async def test_account_deletion_removes_blocks_both_ways_once(http: httpx.AsyncClient, db: asyncpg.Connection,
                                                              ctx: AppContext) -> None:
    a, b, c = await signup(http), await signup(http), await signup(http)
    await http.put(f"/users/{uid(b)}/block", headers=h(a))
    await http.put(f"/users/{uid(a)}/block", headers=h(c))
    await http.put(f"/users/{uid(c)}/block", headers=h(b))
    deleted = await http.request("DELETE", "/users/me", json={"password": a["password"]}, headers=h(a))
    assert deleted.status_code == 204
    await settled(db)
    assert await block_count(db, uid(a), uid(b)) == await block_count(db, uid(c), uid(a)) == 0
    assert await block_count(db, uid(b), uid(c)) == 1
    assert (await http.get("/blocks", headers=h(c))).json()["items"] == []

    row = await db.fetchrow("SELECT name, payload FROM infra.outbox WHERE name = 'users.user_deleted.v1' "
                            "AND payload->>'user_id' = $1", uid(a))
    event = decode_event(row["name"], json.loads(row["payload"]))
    # The block rows of a user id can only come back through a bug; redelivery must change nothing.
    await db.execute("INSERT INTO blocks.blocks (blocker_id, blocked_id) VALUES ($1, $2)",
                     uuid.UUID(uid(b)), uuid.UUID(uid(a)))
    assert await ctx.bus.deliver(event) == []
    assert await ctx.bus.deliver(event) == []
    assert await block_count(db, uid(b), uid(a)) == 1  # the inbox skipped the already-handled event
    assert await db.fetchval("SELECT count(*) FROM infra.inbox WHERE listener = 'blocks.remove_blocks_on_user_deleted'"
                             " AND event_id = $1", event.event_id) == 1
    await db.execute("DELETE FROM blocks.blocks WHERE blocked_id = $1", uuid.UUID(uid(a)))
