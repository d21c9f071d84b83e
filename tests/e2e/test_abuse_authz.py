"""Authorization holes closed (issue 9): profile lists follow the profile rule, groups follow
`who_can_message`, tokens are bound to their session's owner, revoked sessions lose their
sockets whatever Redis does, and outages answer 503 instead of 500."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg
import httpx
import jwt
import socketio

from src.infra.local_services import RedisServer
from tests.e2e.harness import ApiProcess, EventRecorder, auth_headers, connect_socket, signup
from tests.e2e.messaging_support import open_direct
from tests.e2e.test_auth import assert_problem, signin
from tests.e2e.test_ops import _subscribers, _wait_until_recovered

User = dict[str, Any]


def h(user: User) -> dict[str, str]:
    return auth_headers(user["access_token"])


def uid(user: User) -> str:
    return str(user["user"]["id"])


async def test_every_profile_list_hides_what_the_profile_hides(http: httpx.AsyncClient) -> None:
    prefix = f"zq{int(time.time() * 1000) % 10**8}"
    viewer, hidden, blocker, visible, star = [await signup(http, f"{prefix}{n}") for n in "abcde"]
    assert (await http.patch("/privacy/settings", json={"profile_visibility": "nobody"},
                             headers=h(hidden))).status_code == 200
    assert (await http.put(f"/users/{uid(viewer)}/block", headers=h(blocker))).status_code == 200
    for fan in (hidden, visible):
        assert (await http.put(f"/users/{uid(star)}/follow", headers=h(fan))).status_code == 200
    assert (await http.get(f"/users/{uid(hidden)}", headers=h(viewer))).status_code == 404

    found = (await http.get("/users", params={"q": prefix, "limit": 50}, headers=h(viewer))).json()["items"]
    assert {p["username"] for p in found} == {f"{prefix}a", f"{prefix}d", f"{prefix}e"}
    followers = (await http.get(f"/users/{uid(star)}/followers", headers=h(viewer))).json()["items"]
    assert [f["user"]["id"] for f in followers] == [uid(visible)]
    suggested = (await http.get("/users/suggestions", params={"limit": 100}, headers=h(viewer))).json()
    assert {uid(hidden), uid(blocker)}.isdisjoint(p["id"] for p in suggested["items"])
    assert suggested["next_cursor"] is None

    # Friends: a friend who hides their profile from everyone is hidden in the list too.
    request = (await http.post("/friends/requests", json={"user_id": uid(viewer)}, headers=h(visible))).json()
    assert (await http.post(f"/friends/requests/{request['id']}/accept", headers=h(viewer))).status_code == 200
    friends = (await http.get("/friends", headers=h(viewer))).json()["items"]
    assert [f["user"]["id"] for f in friends] == [uid(visible)]
    assert (await http.patch("/privacy/settings", json={"profile_visibility": "nobody"},
                             headers=h(visible))).status_code == 200
    assert (await http.get("/friends", headers=h(viewer))).json()["items"] == []


async def test_a_group_cannot_bypass_who_can_message(http: httpx.AsyncClient) -> None:
    owner, private, open_ = await signup(http), await signup(http), await signup(http)
    assert (await http.patch("/privacy/settings", json={"who_can_message": "nobody"},
                             headers=h(private))).status_code == 200
    assert_problem(await http.post("/conversations", json={"user_id": uid(private)}, headers=h(owner)), 403)
    refused = await http.post("/groups", json={"name": "sneaky", "member_ids": [uid(private), uid(open_)]},
                              headers=h(owner))
    assert_problem(refused, 403, "not_allowed", field="member_ids")
    created = await http.post("/groups", json={"name": "fine", "member_ids": [uid(open_)]}, headers=h(owner))
    assert created.status_code == 201, created.text


async def test_a_token_is_bound_to_its_sessions_owner(http: httpx.AsyncClient, app_env: dict[str, str]) -> None:
    victim, holder = await signup(http), await signup(http)
    claims = jwt.decode(holder["access_token"], options={"verify_signature": False})
    forged = jwt.encode({**claims, "sub": uid(victim)}, app_env["JWT_SECRET"], algorithm="HS256")
    assert_problem(await http.get("/users/me", headers=auth_headers(forged)), 401, "invalid_token")
    assert (await http.get("/users/me", headers=h(holder))).json()["id"] == uid(holder)


async def test_a_session_signed_out_during_a_redis_outage_loses_its_socket(
        http: httpx.AsyncClient, api: ApiProcess, redis_server: RedisServer, redis_url: str) -> None:
    alice, bob = await signup(http), await signup(http)
    conversation_id = (await open_direct(http, alice, bob))["id"]
    tablet = (await signin(http, alice["user"]["username"], alice["password"])).json()
    recorder, idle_recorder = EventRecorder(), EventRecorder()
    socket = await connect_socket(api.base_url, alice["access_token"], recorder=recorder)
    idle = await connect_socket(api.base_url, tablet["access_token"], recorder=idle_recorder)  # only listens
    subscribers = await _subscribers(redis_url)
    async with httpx.AsyncClient(base_url=api.base_url, timeout=15) as root:
        try:
            redis_server.stop()
            assert (await http.post("/auth/signout", headers=h(alice))).status_code == 204
            assert (await http.post("/auth/signout", headers=h(tablet))).status_code == 204
            started, acks = time.monotonic(), []
            while socket.connected and time.monotonic() - started < 6:
                with contextlib.suppress(socketio.exceptions.TimeoutError):
                    acks.append(await socket.call("typing:start", {"conversation_id": conversation_id}, timeout=1))
                if acks and not acks[-1].get("ok"):
                    break
                await asyncio.sleep(0.2)
            # A sending socket is refused once the session is re-checked (the loop gives it 6 s)…
            assert acks and acks[-1]["error"]["code"] == "session_revoked", acks
            await recorder.wait_for("session:revoked", timeout=5)
            # …and a socket that only listens is ended by the periodic sweep (every 10 s),
            # without Redis and without the outbox's redelivery.
            await idle_recorder.wait_for("session:revoked", timeout=15)
            for _ in range(50):
                if not socket.connected and not idle.connected:
                    break
                await asyncio.sleep(0.1)
            assert not socket.connected and not idle.connected
        finally:
            for client in (socket, idle):
                if client.connected:
                    await client.disconnect()
            redis_server.start()
            await _wait_until_recovered(root, redis_url, subscribers)


async def test_outages_are_503_with_retry_after(http: httpx.AsyncClient, migrated_db: str,
                                                api_factory: Any, app_env: dict[str, str]) -> None:
    account = await signup(http)
    # A database that does not answer: 503 + Retry-After, not 500.
    dead = api_factory(DATABASE_URL="postgresql://chatty:x@127.0.0.1:9/none", RUN_OUTBOX_RELAY="false")
    async with httpx.AsyncClient(base_url=dead.base_url + "/api/v1", timeout=15) as client:
        response = await client.post("/auth/signin", json={"login": "someone", "password": "Some-Password-1"})
        assert_problem(response, 503, "unavailable")
        assert int(response.headers["retry-after"]) > 0
    # Every pooled connection killed (as by a PostgreSQL restart): the next requests still succeed.
    assert (await http.get("/users/me", headers=h(account))).status_code == 200
    admin = await asyncpg.connect(migrated_db)
    try:
        killed = await admin.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                      "WHERE application_name = 'chatty' AND pid <> pg_backend_pid()")
    finally:
        await admin.close()
    assert killed > 0
    for _ in range(5):
        me = await http.get("/users/me", headers=h(account))
        assert me.status_code == 200, me.text
        edit = await http.patch("/users/me", json={"quote": "after restart"}, headers=h(account))
        assert edit.status_code == 200, edit.text


async def test_forgot_password_right_after_a_redis_restart_is_accepted(
        http: httpx.AsyncClient, api: ApiProcess, redis_server: RedisServer, redis_url: str) -> None:
    account = await signup(http)
    # Pooled Redis connections exist (limits, broker), and the restart leaves them dead.
    assert (await http.post("/auth/forgot-password", json={"email": account["user"]["email"]})).status_code == 202
    subscribers = await _subscribers(redis_url)
    redis_server.stop()
    redis_server.start()
    async with httpx.AsyncClient(base_url=api.base_url, timeout=15) as root:
        response = await http.post("/auth/forgot-password", json={"email": account["user"]["email"]})
        assert response.status_code == 202, response.text
        await _wait_until_recovered(root, redis_url, subscribers)
