"""Notifications end to end: a real API and worker process (their own Redis database, so no
other worker takes their jobs), a fake FCM server with its OAuth endpoint, a Web Push service
checking VAPID, and the SMTP sink.

"Nothing arrived" is asserted after a later marker arrived (a push the same pipeline sends after).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from src.bootstrap import MODULES
from src.common.clock import utcnow
from src.common.events.base import decode_event
from src.common.events.follows import FollowCreated
from src.common.events.messaging import MessageCreated
from src.infra.context import AppContext
from tests.e2e.harness import (
    DEFAULT_PASSWORD,
    ApiProcess,
    EventRecorder,
    SmtpSink,
    User,
    WorkerProcess,
    connect_socket,
    in_process_context,
    new_user,
)
from tests.e2e.push_fakes import FakeFcm, FakeWebPush, Push

PUSH_DELAY = 1.5
EMAIL_WINDOW = 4.0


@pytest.fixture(scope="module")
def fcm() -> Iterator[FakeFcm]:
    server = FakeFcm()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def webpush() -> Iterator[FakeWebPush]:
    server = FakeWebPush()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def env(app_env: dict[str, str], fcm: FakeFcm, webpush: FakeWebPush) -> dict[str, str]:
    redis_url = app_env["REDIS_URL"].rsplit("/", 1)[0] + "/7"  # our own broker queues
    return {**app_env, **fcm.env(), **webpush.env(), "REDIS_URL": redis_url,
            "PUSH_DELAY": str(PUSH_DELAY), "EMAIL_BATCH_WINDOW": str(EMAIL_WINDOW)}


@pytest.fixture(scope="module")
def api(env: dict[str, str], migrated_db: str) -> Iterator[ApiProcess]:
    process = ApiProcess(env).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def worker(env: dict[str, str], migrated_db: str) -> Iterator[WorkerProcess]:
    process = WorkerProcess(env).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
async def http(api: ApiProcess, worker: WorkerProcess, fcm: FakeFcm) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.base_url + "/api/v1", timeout=15) as client:
        # Warm the worker up (its context, pools, the OAuth token) so tests can time pushes; a
        # worker booting on a loaded machine may take a while.
        user = await new_user(client)
        await marker_follow(client, fcm, user, await fcm_device(client, user), timeout=60)
        yield client


@pytest.fixture(scope="module")
async def nctx(env: dict[str, str]) -> AsyncIterator[AppContext]:
    context = in_process_context(env, MODULES)
    yield context
    await context.redis.aclose()
    await context.db.dispose()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


async def fcm_device(http: httpx.AsyncClient, user: User) -> str:
    token = f"fcm-{uuid.uuid4().hex}"
    ok(await http.post("/devices", json={"platform": "fcm", "token": token}, headers=user.headers), 201)
    return token


async def direct(http: httpx.AsyncClient, a: User, b: User) -> str:
    response = await http.post("/conversations", json={"user_id": b.id}, headers=a.headers)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


async def send(http: httpx.AsyncClient, user: User, conversation_id: str, body: str = "hi") -> dict[str, Any]:
    return dict(ok(await http.post(f"/conversations/{conversation_id}/messages",
                                   json={"client_msg_id": uuid.uuid4().hex, "body": body}, headers=user.headers), 201))


async def follow(http: httpx.AsyncClient, follower: User, followee: User) -> None:
    ok(await http.put(f"/users/{followee.id}/follow", headers=follower.headers))


async def notifications(http: httpx.AsyncClient, user: User, **params: Any) -> dict[str, Any]:
    return dict(ok(await http.get("/notifications", params=params, headers=user.headers)))


def kind_is(kind: str, token: str) -> Any:
    return lambda p: p.token == token and p.data.get("kind") == kind


async def marker_follow(http: httpx.AsyncClient, fcm: FakeFcm, user: User, token: str,
                        timeout: float = 10) -> Push:  # noqa: ASYNC109
    """A follow from a stranger, and its push: what the worker had queued before has been handled."""
    await follow(http, await new_user(http), user)
    return await fcm.wait_for(kind_is("follow", token), timeout)


async def test_offline_recipient_gets_exactly_one_push(http: httpx.AsyncClient, fcm: FakeFcm) -> None:
    a, b = await new_user(http), await new_user(http)
    token = await fcm_device(http, b)
    conversation_id = await direct(http, a, b)
    started = time.monotonic()
    await send(http, a, conversation_id, "lunch at noon?")

    push = await fcm.wait_for(kind_is("message", token))
    assert push.at - started < PUSH_DELAY, "no socket: pushed at once, not after PUSH_DELAY"
    assert push.body["notification"]["body"] == "lunch at noon?"
    assert push.data["conversation_id"] == conversation_id
    await marker_follow(http, fcm, b, token)
    assert len([p for p in fcm.for_token(token) if p.data["kind"] == "message"]) == 1

    page = await notifications(http, b, unread="true")
    message_notes = [n for n in page["items"] if n["kind"] == "message"]
    assert [n["id"] for n in message_notes] == [push.data["notification_id"]]  # one id across channels
    assert page["unread_count"] == 2


async def test_online_recipient_who_reads_within_the_delay_gets_nothing(http: httpx.AsyncClient, api: ApiProcess,
                                                                     fcm: FakeFcm) -> None:
    a, b, c = await new_user(http), await new_user(http), await new_user(http)
    token = await fcm_device(http, b)
    socket = await connect_socket(api.base_url, b.token)
    try:
        read_conversation = await direct(http, a, b)
        marker_conversation = await direct(http, c, b)
        message = await send(http, a, read_conversation, "seen at once")
        ack = await socket.call("message:read", {"conversation_id": read_conversation, "up_to_seq": message["seq"]},
                                timeout=10)
        assert ack["ok"], ack
        await send(http, c, marker_conversation, "marker")  # unread: pushed after the same delay
        marker = await fcm.wait_for(kind_is("message", token))
        assert marker.data["conversation_id"] == marker_conversation
        assert [p.data["conversation_id"] for p in fcm.for_token(token)] == [marker_conversation]
        page = await notifications(http, b)
        assert [n["data"]["conversation_id"] for n in page["items"]] == [marker_conversation]
    finally:
        await socket.disconnect()


async def test_read_on_one_device_clears_the_other_and_skips_the_email(
        http: httpx.AsyncClient, api: ApiProcess, fcm: FakeFcm, webpush: FakeWebPush, smtp: SmtpSink,
        db: asyncpg.Connection) -> None:
    a, b, c = await new_user(http), await new_user(http), await new_user(http)
    phone = await fcm_device(http, b)
    browser = webpush.subscribe()
    ok(await http.post("/devices", json={"platform": "webpush", "token": browser.json}, headers=b.headers), 201)
    conversation_id = await direct(http, a, b)
    message = await send(http, a, conversation_id, "are you there?")
    alert = await fcm.wait_for(kind_is("message", phone))
    note_id = alert.data["notification_id"]
    web_alert = await webpush.wait_for(lambda p: p.token == browser.id and p.data.get("type") == "notification")
    assert web_alert.data["notification_id"] == note_id and web_alert.data["body"] == "are you there?"

    recorder = EventRecorder()
    socket = await connect_socket(api.base_url, b.token, recorder=recorder)
    try:
        # Read on the phone (REST read receipt): the browser gets a silent clear, sockets hear it.
        ok(await http.post(f"/conversations/{conversation_id}/read", json={"up_to_seq": message["seq"]},
                           headers=b.headers))
        clear = await webpush.wait_for(lambda p: p.token == browser.id and p.data.get("type") == "clear")
        assert note_id in clear.data["notification_ids"].split(",")
        fcm_clear = await fcm.wait_for(lambda p: p.token == phone and p.data.get("type") == "clear")
        assert "notification" not in fcm_clear.body  # data only: silent
        cleared = await recorder.wait_for("notification:cleared")
        assert note_id in cleared["ids"]
    finally:
        await socket.disconnect()

    # Still in the same email window: a message from C stays unread; the digest names only that one.
    other = await direct(http, c, b)
    await send(http, c, other, "unread one")
    await fcm.wait_for(lambda p: p.token == phone and p.data.get("conversation_id") == other)
    email = await db.fetchval("SELECT email FROM users.profiles WHERE id = $1", uuid.UUID(b.id))
    mail = await smtp.wait_for(lambda m: email in m.recipients, timeout=EMAIL_WINDOW + 10)
    ids = mail.message["X-Chatty-Notification-Ids"].split(",")
    assert note_id not in ids and len(ids) == 1
    assert "are you there" not in mail.text


async def test_preferences_off_means_nothing_on_that_channel(http: httpx.AsyncClient, fcm: FakeFcm) -> None:
    b = await new_user(http)
    token = await fcm_device(http, b)
    prefs = ok(await http.get("/notifications/preferences", headers=b.headers))
    assert prefs["kinds"]["message"] == {"in_app": True, "push": True, "email": True}
    assert prefs["kinds"]["follow"] == {"in_app": True, "push": True, "email": False}
    prefs = ok(await http.patch("/notifications/preferences",
                                json={"kinds": {"follow": {"push": False, "in_app": False}}}, headers=b.headers))
    assert prefs["kinds"]["follow"] == {"in_app": False, "push": False, "email": False}

    await follow(http, await new_user(http), b)
    d = await new_user(http)
    ok(await http.post("/friends/requests", json={"user_id": b.id}, headers=d.headers), 201)
    await fcm.wait_for(kind_is("friend_request", token))  # the marker: a kind still on
    assert [p.data["kind"] for p in fcm.for_token(token)] == ["friend_request"]
    assert [n["kind"] for n in (await notifications(http, b))["items"]] == ["friend_request"]


async def test_muted_conversation_does_not_notify_until_unmuted(http: httpx.AsyncClient, fcm: FakeFcm) -> None:
    a, b = await new_user(http), await new_user(http)
    token = await fcm_device(http, b)
    conversation_id = await direct(http, a, b)
    until = (utcnow() + timedelta(hours=1)).isoformat()
    muted = ok(await http.patch(f"/conversations/{conversation_id}", json={"muted_until": until}, headers=b.headers))
    assert muted["muted_until"] is not None
    assert (await http.patch(f"/conversations/{conversation_id}", json={"muted_until": until},
                             headers=(await new_user(http)).headers)).status_code == 404

    await send(http, a, conversation_id, "muted one")
    await marker_follow(http, fcm, b, token)
    ok(await http.patch(f"/conversations/{conversation_id}", json={"muted_until": None}, headers=b.headers))
    await send(http, a, conversation_id, "after unmute")
    push = await fcm.wait_for(kind_is("message", token))
    assert push.body["notification"]["body"] == "after unmute"
    assert len([p for p in fcm.for_token(token) if p.data["kind"] == "message"]) == 1


async def test_a_burst_collapses_into_one_notification_updated_in_place(http: httpx.AsyncClient, api: ApiProcess,
                                                                      fcm: FakeFcm) -> None:
    b = await new_user(http)
    token = await fcm_device(http, b)
    recorder = EventRecorder()
    socket = await connect_socket(api.base_url, b.token, recorder=recorder)
    try:
        followers = [await new_user(http) for _ in range(12)]
        for follower in followers:
            await follow(http, follower, b)
        await recorder.wait_for("notification:new", lambda n: n["actor_count"] == 12)
    finally:
        await socket.disconnect()
    page = await notifications(http, b)
    assert len(page["items"]) == 1 and page["unread_count"] == 1
    note = page["items"][0]
    assert note["count"] == 12 and note["actor_count"] == 12
    assert note["actors"][0]["id"] == followers[-1].id
    assert note["text"] == f"{note['actors'][0]['display_name']} and 11 others started following you"
    assert {n["id"] for n in recorder.events["notification:new"]} == {note["id"]}  # updated in place
    last = await fcm.wait_for(lambda p: p.token == token and "11 others" in p.body["notification"]["body"])
    assert {p.data["notification_id"] for p in fcm.for_token(token)} == {note["id"]}
    assert last.body["android"]["notification"]["tag"] == note["id"]  # the device replaces the alert


async def test_a_burst_of_messages_while_online_becomes_one_notification(http: httpx.AsyncClient, api: ApiProcess,
                                                                        fcm: FakeFcm) -> None:
    a, b = await new_user(http), await new_user(http)
    token = await fcm_device(http, b)
    conversation_id = await direct(http, a, b)
    recorder = EventRecorder()
    socket = await connect_socket(api.base_url, b.token, recorder=recorder)
    try:
        for body in ("one", "two", "three"):
            await send(http, a, conversation_id, body)
        # The messages may fall due in one worker round or two: the one notification counts all three.
        await recorder.wait_for("notification:new", lambda n: n["count"] == 3, timeout=PUSH_DELAY + 10)
        last = await fcm.wait_for(lambda p: p.token == token and p.body["notification"]["body"] == "three")
    finally:
        await socket.disconnect()
    page = await notifications(http, b)
    assert [(n["kind"], n["count"]) for n in page["items"]] == [("message", 3)]
    note_id = page["items"][0]["id"]
    assert {n["id"] for n in recorder.events["notification:new"]} == {note_id}  # updated in place
    assert {p.data["notification_id"] for p in fcm.for_token(token)} == {note_id}
    assert last.body["android"]["notification"]["tag"] == note_id


async def test_a_redelivered_event_notifies_once(http: httpx.AsyncClient, fcm: FakeFcm, nctx: AppContext,
                                                  db: asyncpg.Connection) -> None:
    a, b = await new_user(http), await new_user(http)
    token = await fcm_device(http, b)
    await follow(http, a, b)
    await fcm.wait_for(kind_is("follow", token))
    row = await db.fetchrow("SELECT name, payload FROM infra.outbox WHERE name = $1 AND payload->>'follower_id' = $2",
                            FollowCreated.name, a.id)
    event = decode_event(row["name"], json.loads(row["payload"]))
    assert not await nctx.bus.deliver(event)  # the relay would do this after a lost acknowledgement
    assert not await nctx.bus.deliver(event)
    d = await new_user(http)
    ok(await http.post("/friends/requests", json={"user_id": b.id}, headers=d.headers), 201)
    await fcm.wait_for(kind_is("friend_request", token))
    assert [p.data["kind"] for p in fcm.for_token(token)] == ["follow", "friend_request"]
    page = await notifications(http, b)
    assert sorted(n["kind"] for n in page["items"]) == ["follow", "friend_request"]
    assert [n["count"] for n in page["items"] if n["kind"] == "follow"] == [1]


async def test_a_redelivered_message_event_pushes_once(http: httpx.AsyncClient, fcm: FakeFcm, nctx: AppContext,
                                                       db: asyncpg.Connection) -> None:
    a, b = await new_user(http), await new_user(http)
    token = await fcm_device(http, b)
    conversation_id = await direct(http, a, b)
    await send(http, a, conversation_id, "only once")
    await fcm.wait_for(kind_is("message", token))
    row = await db.fetchrow("SELECT name, payload FROM infra.outbox WHERE name = $1 "
                            "AND payload->>'conversation_id' = $2", MessageCreated.name, conversation_id)
    event = decode_event(row["name"], json.loads(row["payload"]))
    assert not await nctx.bus.deliver(event)  # its window opens again: the due check finds it claimed
    assert not await nctx.bus.deliver(event)
    await marker_follow(http, fcm, b, token)
    assert [p.data["kind"] for p in fcm.for_token(token)] == ["message", "follow"]
    assert [n["count"] for n in (await notifications(http, b))["items"] if n["kind"] == "message"] == [1]


async def test_a_group_burst_notifies_each_member_once_unless_read_muted_blocked_or_their_own(
        http: httpx.AsyncClient, fcm: FakeFcm, nctx: AppContext, db: asyncpg.Connection) -> None:
    owner, b, muted, reader, blocked = [await new_user(http) for _ in range(5)]
    tokens = {u.id: await fcm_device(http, u) for u in (owner, b, muted, reader)}
    group = ok(await http.post("/groups", json={"name": "crew", "member_ids": [b.id, muted.id, reader.id, blocked.id]},
                               headers=owner.headers), 201)
    gid = str(group["id"])
    ok(await http.put(f"/users/{blocked.id}/block", headers=b.headers))  # a blocked user stays in the group
    until = (utcnow() + timedelta(hours=1)).isoformat()
    ok(await http.patch(f"/conversations/{gid}", json={"muted_until": until}, headers=muted.headers))
    await send(http, blocked, gid, "from the blocked one")
    for body in ("one", "two", "three"):
        last = await send(http, owner, gid, body)
    ok(await http.post(f"/conversations/{gid}/read", json={"up_to_seq": last["seq"]}, headers=reader.headers))

    # Offline or not, a group member is checked PUSH_DELAY later; the burst is one notification.
    push = await fcm.wait_for(lambda p: p.token == tokens[b.id] and p.data.get("kind") == "message"
                              and p.body["notification"]["body"] == "three", timeout=PUSH_DELAY + 15)
    page = await notifications(http, b)
    assert [(n["kind"], n["count"], n["actor_count"]) for n in page["items"]] == [("message", 3, 1)]
    assert {p.data["notification_id"] for p in fcm.for_token(tokens[b.id])} == {page["items"][0]["id"]}
    assert push.data["conversation_id"] == gid
    # The owner hears of the one message not theirs.
    owner_notes = (await notifications(http, owner))["items"]
    assert [(n["kind"], n["count"], n["actors"][0]["id"]) for n in owner_notes] == [("message", 1, blocked.id)]

    # A redelivered group message event: its window opens again, the event is found claimed.
    row = await db.fetchrow("SELECT name, payload FROM infra.outbox WHERE name = $1 AND payload->>'message_id' = $2",
                            MessageCreated.name, last["id"])
    assert not await nctx.bus.deliver(decode_event(row["name"], json.loads(row["payload"])))
    for _ in range(int((PUSH_DELAY + 15) / 0.1)):  # until a worker has handled the window
        if not await nctx.redis.exists(f"notifications:conversation:{gid}"):
            break
        await asyncio.sleep(0.1)
    assert not await nctx.redis.exists(f"notifications:conversation:{gid}")
    await marker_follow(http, fcm, b, tokens[b.id])
    assert [(n["kind"], n["count"]) for n in (await notifications(http, b))["items"]] == [("follow", 1), ("message", 3)]
    for user in (muted, reader):  # muted; read within the delay
        assert [p for p in fcm.for_token(tokens[user.id]) if p.data["kind"] == "message"] == []
        assert (await notifications(http, user))["items"] == []


async def test_blocked_users_never_notify(http: httpx.AsyncClient, fcm: FakeFcm, nctx: AppContext) -> None:
    b, blocked, blocker = await new_user(http), await new_user(http), await new_user(http)
    token = await fcm_device(http, b)
    ok(await http.put(f"/users/{blocked.id}/block", headers=b.headers))
    ok(await http.put(f"/users/{b.id}/block", headers=blocker.headers))
    for actor in (blocked, blocker):  # events from either side of a block, as if they had slipped through
        event = FollowCreated(follower_id=uuid.UUID(actor.id), followee_id=uuid.UUID(b.id))
        assert not await nctx.bus.deliver(event)
    await marker_follow(http, fcm, b, token)
    assert len(fcm.for_token(token)) == 1
    assert len((await notifications(http, b))["items"]) == 1


async def test_an_unregistered_token_is_removed(http: httpx.AsyncClient, fcm: FakeFcm,
                                                db: asyncpg.Connection) -> None:
    b = await new_user(http)
    token = await fcm_device(http, b)
    fcm.unregister_next(token)
    await follow(http, await new_user(http), b)
    deadline = time.monotonic() + 10
    while await db.fetchval("SELECT count(*) FROM notifications.devices WHERE user_id = $1", uuid.UUID(b.id)):
        assert time.monotonic() < deadline, "the unregistered device was not removed"
        await asyncio.sleep(0.05)
    assert len(fcm.attempts[token]) == 1 and not fcm.for_token(token)


async def test_429_is_retried_after_the_given_delay(http: httpx.AsyncClient, fcm: FakeFcm) -> None:
    b = await new_user(http)
    token = await fcm_device(http, b)
    fcm.answer_next(token, 429, {"Retry-After": "2"}, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}})
    fcm.answer_next(token, 500, body={"error": {"code": 500, "status": "INTERNAL"}})
    await follow(http, await new_user(http), b)
    push = await fcm.wait_for(kind_is("follow", token), timeout=15)
    first, second, third = fcm.attempts[token][:3]
    assert second - first >= 2.0, "Retry-After was not honoured"
    assert third - second >= 1.0  # a 500 without Retry-After: the backoff's first step (2 s)
    assert push.at >= third


async def test_webpush_without_previews_carries_no_text(http: httpx.AsyncClient, webpush: FakeWebPush) -> None:
    a, b = await new_user(http), await new_user(http)
    browser = webpush.subscribe()
    ok(await http.post("/devices", json={"platform": "webpush", "token": browser.json}, headers=b.headers), 201)
    ok(await http.patch("/notifications/preferences", json={"show_previews": False}, headers=b.headers))
    await send(http, a, await direct(http, a, b), "the secret plan")
    push = await webpush.wait_for(lambda p: p.token == browser.id)
    assert "secret" not in str(push.body) and push.data["body"] == "New message"
    assert not webpush.rejected  # every request carried a valid VAPID signature


async def test_in_app_list_read_read_all_and_delete(http: httpx.AsyncClient, api: ApiProcess) -> None:
    b, stranger = await new_user(http), await new_user(http)
    actors = [await new_user(http) for _ in range(3)]
    for actor in actors:
        ok(await http.post("/friends/requests", json={"user_id": b.id}, headers=actor.headers), 201)
    deadline = time.monotonic() + 10
    while (page := await notifications(http, b))["unread_count"] < 3 or len(page["items"]) < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    first = await notifications(http, b, limit=2)
    rest = await notifications(http, b, limit=2, cursor=first["next_cursor"])
    ordered = [n["actors"][0]["id"] for n in first["items"] + rest["items"]]
    assert ordered == [a.id for a in reversed(actors)] and rest["next_cursor"] is None  # newest first

    newest, middle, oldest = (n["id"] for n in page["items"])
    recorder = EventRecorder()
    socket = await connect_socket(api.base_url, b.token, recorder=recorder)
    try:
        assert ok(await http.patch(f"/notifications/{newest}", json={"read": True}, headers=b.headers))["read"]
        assert (await recorder.wait_for("notification:cleared"))["ids"] == [newest]
        assert [n["id"] for n in (await notifications(http, b, unread="true"))["items"]] == [middle, oldest]
        assert (await http.patch(f"/notifications/{middle}", json={"read": True},
                                 headers=stranger.headers)).status_code == 404
        assert (await http.delete(f"/notifications/{middle}", headers=stranger.headers)).status_code == 404
        ok(await http.delete(f"/notifications/{middle}", headers=b.headers), 204)
        assert ok(await http.post("/notifications/read-all", headers=b.headers))["cleared"] == 1
        page = await notifications(http, b)
        assert page["unread_count"] == 0 and [n["id"] for n in page["items"]] == [newest, oldest]
    finally:
        await socket.disconnect()


async def test_devices_are_unique_per_token_and_removable(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    a, b = await new_user(http), await new_user(http)
    token = f"fcm-{uuid.uuid4().hex}"
    first = ok(await http.post("/devices", json={"platform": "fcm", "token": token}, headers=a.headers), 201)
    second = ok(await http.post("/devices", json={"platform": "fcm", "token": token}, headers=b.headers), 201)
    assert first["id"] == second["id"] and "token" not in second
    owner = await db.fetchval("SELECT user_id FROM notifications.devices WHERE id = $1", uuid.UUID(first["id"]))
    assert str(owner) == b.id  # the device changed hands
    assert (await http.delete(f"/devices/{first['id']}", headers=a.headers)).status_code == 404
    ok(await http.delete(f"/devices/{first['id']}", headers=b.headers), 204)
    bad = await http.post("/devices", json={"platform": "webpush", "token": "{}"}, headers=a.headers)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_subscription"


async def test_a_deleted_account_loses_its_devices_and_notifications(http: httpx.AsyncClient, fcm: FakeFcm,
                                                                     db: asyncpg.Connection) -> None:
    b = await new_user(http)
    token = await fcm_device(http, b)
    await marker_follow(http, fcm, b, token)
    ok(await http.request("DELETE", "/users/me", json={"password": DEFAULT_PASSWORD}, headers=b.headers), 204)
    deadline = time.monotonic() + 10
    query = ("SELECT (SELECT count(*) FROM notifications.devices WHERE user_id = $1)"
             " + (SELECT count(*) FROM notifications.notifications WHERE user_id = $1)")
    while await db.fetchval(query, uuid.UUID(b.id)):
        assert time.monotonic() < deadline, "the deleted account's rows are still there"
        await asyncio.sleep(0.05)


async def test_windows_opened_together_each_get_their_own_digest(
        http: httpx.AsyncClient, smtp: SmtpSink, db: asyncpg.Connection) -> None:
    # Offline recipients are due at once, so both messages are checked in one due round: their email
    # windows open together and one digest job mails each recipient their own notification.
    a, b, c = await new_user(http), await new_user(http), await new_user(http)
    to_b, to_c = await direct(http, a, b), await direct(http, a, c)
    await asyncio.gather(send(http, a, to_b, "for b only"), send(http, a, to_c, "for c only"))
    emails = {u.id: await db.fetchval("SELECT email FROM users.profiles WHERE id = $1", uuid.UUID(u.id))
              for u in (b, c)}
    mail_b = await smtp.wait_for(lambda m: emails[b.id] in m.recipients, timeout=EMAIL_WINDOW + 10)
    mail_c = await smtp.wait_for(lambda m: emails[c.id] in m.recipients, timeout=EMAIL_WINDOW + 10)
    for user, mail in ((b, mail_b), (c, mail_c)):  # each names that user's own notification, only
        mine = {n["id"] for n in (await notifications(http, user))["items"]}
        assert mail.message["X-Chatty-Notification-Ids"].split(",") == list(mine) and len(mine) == 1
    await asyncio.sleep(1.0)  # nothing mailed twice
    assert sum(emails[b.id] in m.recipients for m in smtp.messages) == 1
    assert sum(emails[c.id] in m.recipients for m in smtp.messages) == 1
