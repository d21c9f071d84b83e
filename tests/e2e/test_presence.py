"""Presence: online on one API process and seen from another, offline after the debounce with
`last_seen_at`, heartbeat expiry, a flapping connection sends nothing, and who may see whom
(contact / stranger / `show_last_seen` off / blocked). Timings are shortened on a second API
process; the suite's worker runs the announcements and the sweep."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.harness import ApiProcess, EventRecorder, WorkerProcess, connect_socket
from tests.e2e.messaging_support import User, call, h, ok, open_direct, problem, uid, users

FAST = {"PRESENCE_TIMEOUT": "2", "PRESENCE_DEBOUNCE": "2"}


@pytest.fixture(scope="module")
def fast_api(app_env: dict[str, str], migrated_db: str, worker: WorkerProcess) -> Iterator[ApiProcess]:
    """A second API process with short presence timings (heartbeat timeout and debounce 2 s)."""
    with ApiProcess.serving({**app_env, **FAST}) as process:
        yield process


def about(user: User, online: bool | None = None) -> Callable[[Any], bool]:
    return lambda e: e["user_id"] == uid(user) and (online is None or e["online"] is online)


async def presence_of(http: httpx.AsyncClient, viewer: User, *targets: User) -> dict[str, Any]:
    return dict(ok(await http.get("/presence", params={"user_ids": ",".join(uid(t) for t in targets)},
                                  headers=h(viewer))))


async def befriend(http: httpx.AsyncClient, a: User, b: User) -> None:
    request = ok(await http.post("/friends/requests", json={"user_id": uid(b)}, headers=h(a)), 201)
    ok(await http.post(f"/friends/requests/{request['id']}/accept", headers=h(b)))


async def test_online_on_one_process_is_seen_from_another_and_offline_after_the_debounce(
        http: httpx.AsyncClient, api: ApiProcess, fast_api: ApiProcess) -> None:
    watcher, user = await users(http, 2)
    await open_direct(http, watcher, user)
    seen = EventRecorder()
    watching = await connect_socket(api.base_url, watcher["access_token"], recorder=seen)
    try:
        assert (await presence_of(http, watcher, user))[uid(user)] == {"online": False, "last_seen_at": None}
        socket = await connect_socket(fast_api.base_url, user["access_token"])
        online = await seen.wait_for("presence", about(user, True))
        assert online["last_seen_at"] is None
        assert (await presence_of(http, watcher, user))[uid(user)]["online"] is True
        await socket.disconnect()
        offline = await seen.wait_for("presence", about(user, False), timeout=10)
        assert offline["last_seen_at"] is not None
        assert (await presence_of(http, watcher, user))[uid(user)] == {"online": False,
                                                                        "last_seen_at": offline["last_seen_at"]}
    finally:
        await watching.disconnect()


async def test_a_flapping_connection_sends_nothing(http: httpx.AsyncClient, api: ApiProcess,
                                                   fast_api: ApiProcess) -> None:
    watcher, user = await users(http, 2)
    await open_direct(http, watcher, user)
    seen = EventRecorder()
    watching = await connect_socket(api.base_url, watcher["access_token"], recorder=seen)
    try:
        socket = await connect_socket(fast_api.base_url, user["access_token"])
        await seen.wait_for("presence", about(user, True))
        for _ in range(3):  # reconnects well within the debounce
            await socket.disconnect()
            socket = await connect_socket(fast_api.base_url, user["access_token"])
        await socket.disconnect()
        await seen.wait_for("presence", about(user, False), timeout=10)
        assert [e["online"] for e in seen.events["presence"] if about(user)(e)] == [True, False]
    finally:
        await watching.disconnect()


async def test_a_missing_heartbeat_means_gone_and_a_heartbeat_brings_the_user_back(
        http: httpx.AsyncClient, api: ApiProcess, fast_api: ApiProcess) -> None:
    watcher, user = await users(http, 2)
    await open_direct(http, watcher, user)
    seen = EventRecorder()
    watching = await connect_socket(api.base_url, watcher["access_token"], recorder=seen)
    socket = await connect_socket(fast_api.base_url, user["access_token"])
    try:
        await seen.wait_for("presence", about(user, True))
        # The socket stays connected but sends no heartbeat: gone after PRESENCE_TIMEOUT.
        await seen.wait_for("presence", about(user, False), timeout=10)
        assert socket.connected
        seen.clear("presence")
        ack = await call(socket, "presence:heartbeat", {})
        assert ack == {"ok": True, "data": {"online": True, "expires_in": 2.0}}
        await seen.wait_for("presence", about(user, True))
    finally:
        await socket.disconnect()
        await watching.disconnect()


async def test_who_sees_whose_presence(http: httpx.AsyncClient, api: ApiProcess, worker: WorkerProcess) -> None:
    viewer, friend, peer, stranger, hidden, blocked = await users(http, 6)
    await befriend(http, viewer, friend)
    await open_direct(http, viewer, peer)
    await open_direct(http, viewer, hidden)
    await open_direct(http, viewer, blocked)
    ok(await http.patch("/privacy/settings", json={"show_last_seen": False}, headers=h(hidden)))
    ok(await http.put(f"/users/{uid(viewer)}/block", headers=h(blocked)))

    seen = EventRecorder()
    watching = await connect_socket(api.base_url, viewer["access_token"], recorder=seen)
    sockets = []
    try:
        for user in (stranger, hidden, blocked, peer, friend):  # the contacts last: markers for the others
            sockets.append(await connect_socket(api.base_url, user["access_token"]))
        await seen.wait_for("presence", about(peer, True))
        await seen.wait_for("presence", about(friend, True))
        answer = await presence_of(http, viewer, friend, peer, stranger, hidden, blocked, viewer)
        assert answer == {uid(friend): {"online": True, "last_seen_at": None},
                          uid(peer): {"online": True, "last_seen_at": None},
                          uid(stranger): None, uid(hidden): None, uid(blocked): None,
                          uid(viewer): {"online": True, "last_seen_at": None}}
        assert {e["user_id"] for e in seen.events["presence"]} == {uid(friend), uid(peer)}
        # The other way round: the hidden user still sees the viewer (only their own setting is off).
        assert (await presence_of(http, hidden, viewer))[uid(viewer)]["online"] is True
        assert (await presence_of(http, blocked, viewer))[uid(viewer)] is None
    finally:
        for socket in sockets:
            await socket.disconnect()
        await watching.disconnect()


async def test_users_coming_online_together_are_each_announced_to_their_own_contacts(
        http: httpx.AsyncClient, api: ApiProcess, worker: WorkerProcess) -> None:
    """The worker announces a batch of transitions at once: each watcher still gets exactly its contacts'."""
    first, second, friend, peer, hidden, blocker, marker = await users(http, 7)
    await befriend(http, first, friend)
    await open_direct(http, second, peer)
    for watcher in (first, second):
        await open_direct(http, watcher, hidden)
        await open_direct(http, watcher, blocker)
        await open_direct(http, watcher, marker)
    ok(await http.patch("/privacy/settings", json={"show_last_seen": False}, headers=h(hidden)))
    ok(await http.put(f"/users/{uid(first)}/block", headers=h(blocker)))

    seen = {uid(first): EventRecorder(), uid(second): EventRecorder()}
    watching = [await connect_socket(api.base_url, w["access_token"], recorder=seen[uid(w)]) for w in (first, second)]
    sockets = []
    try:
        sockets += await asyncio.gather(*(connect_socket(api.base_url, u["access_token"])
                                          for u in (friend, peer, hidden, blocker)))
        await seen[uid(first)].wait_for("presence", about(friend, True))
        await seen[uid(second)].wait_for("presence", about(peer, True))
        await seen[uid(second)].wait_for("presence", about(blocker, True))
        sockets.append(await connect_socket(api.base_url, marker["access_token"]))  # after the others
        for recorder in seen.values():
            await recorder.wait_for("presence", about(marker, True))
        assert {e["user_id"] for e in seen[uid(first)].events["presence"]} == {uid(friend), uid(marker)}
        assert {e["user_id"] for e in seen[uid(second)].events["presence"]} == {uid(peer), uid(blocker), uid(marker)}
    finally:
        for socket in [*sockets, *watching]:
            await socket.disconnect()


async def test_presence_input_is_validated(http: httpx.AsyncClient) -> None:
    viewer = (await users(http, 1))[0]
    problem(await http.get("/presence", params={"user_ids": "nope"}, headers=h(viewer)), 400, "validation_failed")
    too_many = ",".join(str(uuid.uuid4()) for _ in range(101))
    problem(await http.get("/presence", params={"user_ids": too_many}, headers=h(viewer)), 400, "validation_failed")
    unknown = str(uuid.uuid4())
    assert ok(await http.get("/presence", params={"user_ids": unknown}, headers=h(viewer))) == {unknown: None}
