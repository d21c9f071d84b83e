"""Messaging over Socket.IO: acked sends, fan-out to every device but the sending one, idempotent
retries, payload validation, typing, delivery and read receipts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from src.bootstrap import MODULES
from tests.e2e.harness import ApiProcess
from tests.e2e.messaging_support import call, device, h, history, ok, open_direct, send, settle, uid, users

HAS_PRIVACY = "privacy" in {m.name for m in MODULES}


@pytest.fixture(scope="module")
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_send_acks_the_stored_message_and_reaches_every_other_device(http: httpx.AsyncClient,
                                                                           api: ApiProcess) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    async with device(api.base_url, a) as (sending, sender_events), \
            device(api.base_url, a) as (_, sender_laptop), \
            device(api.base_url, b) as (_, phone), device(api.base_url, b) as (_, tablet):
        ack = await call(sending, "message:send", {"conversation_id": cid, "client_msg_id": "c-1", "body": "hey"})
        assert ack["ok"] is True
        stored = ack["data"]
        assert stored == (await history(http, b, cid))[0] | {"my_reactions": []}
        assert (stored["seq"], stored["body"], stored["sender_id"]) == (1, "hey", uid(a))
        for events in (phone, tablet, sender_laptop):
            assert await events.wait_for("message:new") == stored
        await settle()
        assert "message:new" not in sender_events.events  # the sending socket has its ack instead
        assert all(len(events.events["message:new"]) == 1 for events in (phone, tablet, sender_laptop))


async def test_socket_retry_stores_and_delivers_once(http: httpx.AsyncClient, api: ApiProcess) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    async with device(api.base_url, a) as (sending, _), device(api.base_url, b) as (_, inbox):
        payload = {"conversation_id": cid, "client_msg_id": "again", "body": "once"}
        first, second = [await call(sending, "message:send", payload) for _ in range(2)]
        assert first == second and first["ok"] is True
        await inbox.wait_for("message:new")
        await settle()
        assert len(inbox.events["message:new"]) == 1
    assert len(await history(http, a, cid)) == 1


async def test_bad_payloads_are_refused_naming_the_field(http: httpx.AsyncClient, api: ApiProcess) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    async with device(api.base_url, a) as (sock, _):
        cases = [
            ("message:send", {"client_msg_id": "x", "body": "hi"}, "validation_failed", "conversation_id"),
            ("message:send", {"conversation_id": cid, "client_msg_id": 7, "body": "hi"}, "validation_failed",
             "client_msg_id"),
            ("message:send", {"conversation_id": "nope", "client_msg_id": "x"}, "validation_failed",
             "conversation_id"),
            ("message:send", {"conversation_id": cid, "client_msg_id": "x", "body": "hi", "extra": 1},
             "validation_failed", "extra"),
            ("message:send", {"conversation_id": cid, "client_msg_id": "x"}, "empty_message", "body"),
            ("message:send", {"conversation_id": cid, "client_msg_id": "x", "body": "y" * 4001},
             "message_too_long", "body"),
            ("message:send", {"conversation_id": cid, "client_msg_id": "x", "body": "nul\u0000"}, "invalid_text",
             "body"),
            ("message:read", {"conversation_id": cid, "up_to_seq": "3"}, "validation_failed", "up_to_seq"),
            ("message:delivered", {"conversation_id": cid}, "validation_failed", "up_to_seq"),
            ("typing:start", {}, "validation_failed", "conversation_id"),
        ]
        for event, payload, code, field in cases:
            ack = await call(sock, event, payload)
            assert ack["ok"] is False and ack["error"]["code"] == code and ack["error"].get("field") == field, \
                (event, payload, ack)
        lone_surrogate = await call(sock, "message:send", {"conversation_id": cid, "client_msg_id": "x",
                                                           "body": "\ud800"})
        assert lone_surrogate["ok"] is False and lone_surrogate["error"]["code"] == "invalid_text"
        for not_an_object in ("text", [1, 2], None):
            ack = await call(sock, "message:send", not_an_object)
            assert ack["ok"] is False and ack["error"]["code"] == "validation_failed"
    assert await history(http, a, cid) == []


async def test_typing_reaches_the_other_members_only(http: httpx.AsyncClient, api: ApiProcess,
                                                     redis: aioredis.Redis) -> None:
    a, b, outsider = await users(http, 3)
    cid = (await open_direct(http, a, b))["id"]
    async with device(api.base_url, a) as (typist, own), device(api.base_url, a) as (_, own_other), \
            device(api.base_url, b) as (_, peer), device(api.base_url, outsider) as (stranger, strangers):
        ack = await call(typist, "typing:start", {"conversation_id": cid})
        assert ack["ok"] is True and 1 <= ack["data"]["expires_in"] <= 10
        assert ack["data"] | {"expires_in": 0} == {"conversation_id": cid, "typing": True, "expires_in": 0}
        started = await peer.wait_for("typing")
        assert started == {"conversation_id": cid, "user_id": uid(a), "typing": True,
                           "expires_in": ack["data"]["expires_in"]}
        assert 0 < await redis.ttl(f"typing:{cid}:{uid(a)}") <= 10
        await call(typist, "typing:stop", {"conversation_id": cid})
        stopped = await peer.wait_for("typing", lambda p: p["typing"] is False)
        assert stopped["user_id"] == uid(a)
        assert await redis.exists(f"typing:{cid}:{uid(a)}") == 0

        refused = await call(stranger, "typing:start", {"conversation_id": cid})
        assert refused["ok"] is False and refused["error"]["code"] == "conversation_not_found"
        await settle()
        assert "typing" not in own.events and "typing" not in own_other.events and "typing" not in strangers.events
        assert len(peer.events["typing"]) == 2


async def test_delivery_receipts_reach_the_sender_once_per_advance(http: httpx.AsyncClient,
                                                                   api: ApiProcess) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    for i in range(3):
        await send(http, a, cid, f"m{i}")
    async with device(api.base_url, a) as (_, sender), device(api.base_url, b) as (receiver, own):
        ack = await call(receiver, "message:delivered", {"conversation_id": cid, "up_to_seq": 2})
        assert ack["ok"] is True and ack["data"]["last_delivered_seq"] == 2
        assert await sender.wait_for("message:delivered") == {"conversation_id": cid, "user_id": uid(b),
                                                               "up_to_seq": 2}
        for repeat in (2, 1):  # no advance, no event
            assert (await call(receiver, "message:delivered",
                               {"conversation_id": cid, "up_to_seq": repeat}))["data"]["last_delivered_seq"] == 2
        ok(await http.post(f"/conversations/{cid}/delivered", json={"up_to_seq": 50}, headers=h(b)))
        await sender.wait_for("message:delivered", lambda p: p["up_to_seq"] == 3)  # capped at the last seq
        await settle()
        assert [p["up_to_seq"] for p in sender.events["message:delivered"]] == [2, 3]
        assert "message:delivered" not in own.events  # the reader's own devices do not need it


async def test_read_receipts_imply_delivery_and_respect_the_setting(http: httpx.AsyncClient,
                                                                    api: ApiProcess) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    for i in range(4):
        await send(http, a, cid, f"m{i}")
    async with device(api.base_url, a) as (_, sender), device(api.base_url, b) as (reader, reader_events), \
            device(api.base_url, b) as (_, reader_other):
        ack = await call(reader, "message:read", {"conversation_id": cid, "up_to_seq": 2})
        assert ack["data"] == {"conversation_id": cid, "last_read_seq": 2, "last_delivered_seq": 2, "unread_count": 2}
        expected = {"conversation_id": cid, "user_id": uid(b), "up_to_seq": 2}
        assert await sender.wait_for("message:read") == expected
        assert await sender.wait_for("message:delivered") == expected
        assert await reader_other.wait_for("message:read") == expected  # the reader's other devices follow
        await settle()
        assert "message:read" not in reader_events.events

        if HAS_PRIVACY:
            ok(await http.patch("/privacy/settings", json={"read_receipts": False}, headers=h(b)))
            ack = await call(reader, "message:read", {"conversation_id": cid, "up_to_seq": 4})
            assert ack["data"]["unread_count"] == 0
            await reader_other.wait_for("message:read", lambda p: p["up_to_seq"] == 4)
            await sender.wait_for("message:delivered", lambda p: p["up_to_seq"] == 4)
            await settle()
            assert [p["up_to_seq"] for p in sender.events["message:read"]] == [2]  # read receipts off
            member_b = next(m for m in (await http.get(f"/conversations/{cid}", headers=h(a))).json()["members"]
                            if m["user_id"] == uid(b))
            assert (member_b["read_seq"], member_b["delivered_seq"]) == (2, 4)


async def test_a_new_conversation_is_announced_to_both_members(http: httpx.AsyncClient, api: ApiProcess) -> None:
    a, b = await users(http, 2)
    async with device(api.base_url, a) as (_, mine), device(api.base_url, b) as (_, theirs):
        created = await open_direct(http, a, b)
        for events in (mine, theirs):
            announced = await events.wait_for("conversation:updated")
            assert announced["id"] == created["id"] and announced["kind"] == "direct"
            assert {m["user_id"] for m in announced["members"]} == {uid(a), uid(b)}


async def test_socket_send_to_an_unknown_conversation_is_not_found(http: httpx.AsyncClient,
                                                                   api: ApiProcess) -> None:
    (a,) = await users(http, 1)
    async with device(api.base_url, a) as (sock, _):
        ack = await call(sock, "message:send", {"conversation_id": str(uuid.uuid4()), "client_msg_id": "x",
                                                "body": "hello?"})
        assert ack == {"ok": False, "error": {"code": "conversation_not_found", "detail": "No such conversation"}}
