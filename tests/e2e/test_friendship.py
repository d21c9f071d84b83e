"""Friend requests (send, accept, decline, cancel), friends lists, blocks, races, replays and sockets."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from src.common.events.blocks import UserBlocked
from src.common.queries.graph import AreFriends
from src.infra.context import AppContext
from tests.e2e.harness import ApiProcess, EventRecorder, User, connect_socket, new_user, quiet_barrier


def problem_code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    code: str = response.json()["code"]
    return code


async def ask(http: httpx.AsyncClient, sender: User, recipient: User) -> httpx.Response:
    return await http.post("/friends/requests", headers=sender.headers, json={"user_id": recipient.id})


async def requests_of(http: httpx.AsyncClient, user: User, direction: str) -> list[dict[str, Any]]:
    response = await http.get("/friends/requests", headers=user.headers,
                              params={"direction": direction, "limit": 100})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def friends_of(http: httpx.AsyncClient, user: User) -> list[str]:
    response = await http.get("/friends", headers=user.headers, params={"limit": 100})
    assert response.status_code == 200, response.text
    return [item["user"]["id"] for item in response.json()["items"]]








async def test_request_lifecycle_and_who_may_act(http: httpx.AsyncClient) -> None:
    ann, bob, eve = await new_user(http), await new_user(http), await new_user(http)

    sent = await ask(http, ann, bob)
    assert sent.status_code == 201, sent.text
    request = sent.json()
    assert (request["from_user_id"], request["to_user_id"], request["status"]) == (ann.id, bob.id, "pending")
    assert request["user"]["id"] == bob.id
    again = await ask(http, ann, bob)
    assert again.status_code == 200 and again.json()["id"] == request["id"]

    [incoming] = await requests_of(http, bob, "incoming")
    assert incoming["id"] == request["id"] and incoming["user"]["id"] == ann.id
    [outgoing] = await requests_of(http, ann, "outgoing")
    assert outgoing["id"] == request["id"] and outgoing["user"]["id"] == bob.id
    assert await requests_of(http, ann, "incoming") == []

    # Nobody but the recipient accepts or declines; nobody but the sender cancels.
    path = f"/friends/requests/{request['id']}"
    for user in (eve, ann):
        assert problem_code(await http.post(f"{path}/accept", headers=user.headers), 404) == "request_not_found"
        assert problem_code(await http.post(f"{path}/decline", headers=user.headers), 404) == "request_not_found"
    for user in (eve, bob):
        assert problem_code(await http.delete(path, headers=user.headers), 404) == "request_not_found"
    assert len(await requests_of(http, bob, "incoming")) == 1

    accepted = await http.post(f"{path}/accept", headers=bob.headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted" and accepted.json()["user"]["id"] == ann.id
    assert await friends_of(http, ann) == [bob.id]
    assert await friends_of(http, bob) == [ann.id]
    assert await friends_of(http, eve) == []
    assert await requests_of(http, bob, "incoming") == []
    assert problem_code(await http.post(f"{path}/accept", headers=bob.headers), 404) == "request_not_found"
    assert problem_code(await ask(http, ann, bob), 409) == "already_friends"
    assert problem_code(await ask(http, bob, ann), 409) == "already_friends"

    # Unfriending is idempotent, and either may ask again afterwards.
    assert (await http.delete(f"/friends/{ann.id}", headers=bob.headers)).status_code == 204
    assert (await http.delete(f"/friends/{ann.id}", headers=bob.headers)).status_code == 204
    assert await friends_of(http, ann) == []
    assert (await ask(http, ann, bob)).status_code == 201


async def test_decline_and_cancel(http: httpx.AsyncClient) -> None:
    ann, bob = await new_user(http), await new_user(http)
    first = (await ask(http, ann, bob)).json()
    assert (await http.post(f"/friends/requests/{first['id']}/decline", headers=bob.headers)).status_code == 204
    assert await requests_of(http, bob, "incoming") == []
    assert await friends_of(http, bob) == []

    second = await ask(http, ann, bob)
    assert second.status_code == 201 and second.json()["id"] != first["id"]
    assert (await http.delete(f"/friends/requests/{second.json()['id']}", headers=ann.headers)).status_code == 204
    assert await requests_of(http, ann, "outgoing") == []
    assert problem_code(await http.post(f"/friends/requests/{second.json()['id']}/accept", headers=bob.headers),
                        404) == "request_not_found"


async def test_asking_someone_who_asked_you_accepts_theirs(http: httpx.AsyncClient) -> None:
    ann, bob = await new_user(http), await new_user(http)
    theirs = (await ask(http, ann, bob)).json()
    mine = await ask(http, bob, ann)
    assert mine.status_code == 200, mine.text
    assert mine.json()["id"] == theirs["id"] and mine.json()["status"] == "accepted"
    assert mine.json()["user"]["id"] == ann.id
    assert await friends_of(http, bob) == [ann.id]
    assert await requests_of(http, ann, "outgoing") == []


async def test_concurrent_mutual_requests_make_one_friendship(http: httpx.AsyncClient) -> None:
    pairs = [(await new_user(http), await new_user(http)) for _ in range(6)]
    results = await asyncio.gather(*(request for ann, bob in pairs
                                     for request in (ask(http, ann, bob), ask(http, bob, ann))))
    assert all(r.status_code in (200, 201) for r in results), [r.text for r in results]
    for ann, bob in pairs:
        assert await friends_of(http, ann) == [bob.id]
        assert await friends_of(http, bob) == [ann.id]
        for user in (ann, bob):
            assert await requests_of(http, user, "incoming") == []
            assert await requests_of(http, user, "outgoing") == []


async def test_concurrent_identical_requests_make_one_request(http: httpx.AsyncClient) -> None:
    ann, bob = await new_user(http), await new_user(http)
    results = await asyncio.gather(*(ask(http, ann, bob) for _ in range(6)))
    assert sorted(r.status_code for r in results).count(201) == 1, [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert len(await requests_of(http, bob, "incoming")) == 1


async def test_request_input_errors(http: httpx.AsyncClient) -> None:
    ann = await new_user(http)
    assert problem_code(await ask(http, ann, ann), 400) == "cannot_befriend_self"
    assert problem_code(await http.post("/friends/requests", headers=ann.headers,
                                        json={"user_id": str(uuid.uuid4())}), 404) == "user_not_found"
    assert problem_code(await http.post("/friends/requests", headers=ann.headers, json={"user_id": "nope"}),
                        400) == "validation_failed"
    assert problem_code(await http.post("/friends/requests", headers=ann.headers,
                                        json={"user_id": ann.id, "extra": 1}), 400) == "validation_failed"
    assert problem_code(await http.get("/friends/requests", headers=ann.headers,
                                       params={"direction": "sideways"}), 400) == "validation_failed"
    assert problem_code(await http.get("/friends", headers=ann.headers, params={"cursor": "%%%"}), 400) \
        == "invalid_cursor"
    assert (await http.get("/friends")).status_code == 401


async def test_friends_are_newest_first_and_paginated(http: httpx.AsyncClient) -> None:
    me = await new_user(http)
    others = [await new_user(http) for _ in range(5)]
    for index, other in enumerate(others):
        # Half of them asked me, half were asked by me: both sides of the stored pair are listed.
        asker, asked = (other, me) if index % 2 else (me, other)
        request = (await ask(http, asker, asked)).json()
        assert (await http.post(f"/friends/requests/{request['id']}/accept", headers=asked.headers)).status_code == 200

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await http.get("/friends", headers=me.headers, params=params)).json()
        assert len(page["items"]) <= 2
        seen += [item["user"]["id"] for item in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [other.id for other in reversed(others)]


async def test_blocks_refuse_requests_and_remove_the_friendship(http: httpx.AsyncClient) -> None:
    ann, bob, cat = await new_user(http), await new_user(http), await new_user(http)
    request = (await ask(http, ann, bob)).json()
    assert (await http.post(f"/friends/requests/{request['id']}/accept", headers=bob.headers)).status_code == 200
    assert (await ask(http, cat, ann)).status_code == 201

    assert (await http.put(f"/users/{bob.id}/block", headers=ann.headers)).status_code == 200
    assert (await http.put(f"/users/{cat.id}/block", headers=ann.headers)).status_code == 200
    assert await friends_of(http, ann) == []
    assert await friends_of(http, bob) == []
    assert await requests_of(http, ann, "incoming") == []
    assert await requests_of(http, cat, "outgoing") == []

    assert problem_code(await ask(http, ann, bob), 403) == "blocked"
    assert problem_code(await ask(http, bob, ann), 404) == "user_not_found"


async def test_deleted_user_disappears_from_friends_and_requests(http: httpx.AsyncClient) -> None:
    ann, bob, cat = await new_user(http), await new_user(http), await new_user(http)
    request = (await ask(http, ann, bob)).json()
    assert (await http.post(f"/friends/requests/{request['id']}/accept", headers=bob.headers)).status_code == 200
    assert (await ask(http, bob, cat)).status_code == 201
    deleted = await http.request("DELETE", "/users/me", headers=bob.headers,
                                 json={"password": "Correct-Horse-Battery-9"})
    assert deleted.status_code == 204, deleted.text
    assert await friends_of(http, ann) == []
    assert await requests_of(http, cat, "incoming") == []


async def test_user_blocked_delivered_twice_and_are_friends(http: httpx.AsyncClient, ctx: AppContext,
                                                            migrated_db: str) -> None:
    ann, bob, cat = await new_user(http), await new_user(http), await new_user(http)
    request = (await ask(http, ann, bob)).json()
    assert (await http.post(f"/friends/requests/{request['id']}/accept", headers=bob.headers)).status_code == 200
    assert (await ask(http, cat, ann)).status_code == 201
    a, b, c = (uuid.UUID(u.id) for u in (ann, bob, cat))
    assert await ctx.queries.ask(AreFriends(user_a=b, user_b=a)) is True
    assert await ctx.queries.ask(AreFriends(user_a=a, user_b=c)) is False

    for event in (UserBlocked(blocker_id=a, blocked_id=b), UserBlocked(blocker_id=a, blocked_id=c)):
        assert await ctx.bus.deliver(event) == []
        assert await ctx.bus.deliver(event) == []

    assert await ctx.queries.ask(AreFriends(user_a=a, user_b=b)) is False
    assert await friends_of(http, bob) == []
    assert await requests_of(http, ann, "incoming") == []
    conn = await asyncpg.connect(migrated_db)
    try:
        published = await conn.fetchval(
            "SELECT count(*) FROM infra.outbox WHERE name = 'friendship.deleted.v1'"
            " AND payload->>'user_a' = $1 AND payload->>'user_b' = $2", ann.id, bob.id)
    finally:
        await conn.close()
    assert published == 1


async def test_socket_events_reach_the_users_concerned_only(http: httpx.AsyncClient, api: ApiProcess,
                                                            db: asyncpg.Connection) -> None:
    ann, bob, eve = await new_user(http), await new_user(http), await new_user(http)
    recorders = {user.id: EventRecorder() for user in (ann, bob, eve)}
    sockets = [await connect_socket(api.base_url, user.token, recorder=recorders[user.id])
               for user in (ann, bob, eve)]
    ann_events, bob_events, eve_events = (recorders[u.id] for u in (ann, bob, eve))
    try:
        request = (await ask(http, ann, bob)).json()
        received = await bob_events.wait_for("friend:request")
        assert received["id"] == request["id"] and received["user"]["id"] == ann.id
        assert received["status"] == "pending"

        assert (await http.post(f"/friends/requests/{request['id']}/accept", headers=bob.headers)).status_code == 200
        to_requester = await ann_events.wait_for("friend:accepted")
        assert to_requester["request_id"] == request["id"] and to_requester["user"]["id"] == bob.id
        to_accepter = await bob_events.wait_for("friend:accepted")  # the accepter's other devices
        assert to_accepter["user"]["id"] == ann.id

        await quiet_barrier(http, db, ann.token, ann_events)
        await quiet_barrier(http, db, eve.token, eve_events)
        assert "friend:request" not in ann_events.events
        assert not {"friend:request", "friend:accepted"} & set(eve_events.events)
    finally:
        for socket in sockets:
            await socket.disconnect()
