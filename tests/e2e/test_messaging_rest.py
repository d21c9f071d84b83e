"""Conversations and messages over REST: one direct conversation per pair, history, edits,
deletions, reactions, receipts and unread counts, body limits, idempotent sends, blocks, groups,
and account deletion (delivered twice, one effect)."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import httpx
import pytest

from src.bootstrap import MODULES
from src.common.events.base import decode_event
from src.common.events.messaging import MessageCreated
from src.infra.context import AppContext
from src.modules.messaging.changes import Fanout, SyncStream
from src.modules.messaging.schemas import SendMessage
from src.modules.messaging.sending import SendService
from tests.e2e.harness import ApiProcess, settled
from tests.e2e.media_support import png, upload
from tests.e2e.messaging_support import (
    conversation,
    device,
    h,
    history,
    ok,
    open_direct,
    problem,
    send,
    settle,
    uid,
    users,
)

HAS_BLOCKS = {"blocks", "privacy"} <= {m.name for m in MODULES}


async def test_direct_conversation_is_created_once_under_concurrent_calls(http: httpx.AsyncClient) -> None:
    a, b = await users(http, 2)
    calls = [http.post("/conversations", json={"user_id": uid(b if i % 2 == 0 else a)},
                       headers=h(a if i % 2 == 0 else b)) for i in range(10)]
    responses = await asyncio.gather(*calls)
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    for user, other in ((a, b), (b, a)):
        listed = ok(await http.get("/conversations", headers=h(user)))["items"]
        assert [c["id"] for c in listed] == [responses[0].json()["id"]]
        assert listed[0]["kind"] == "direct" and listed[0]["peer_id"] == uid(other)
    problem(await http.post("/conversations", json={"user_id": uid(a)}, headers=h(a)), 400, "invalid_user")
    problem(await http.post("/conversations", json={"user_id": str(uuid.uuid4())}, headers=h(a)), 404,
            "user_not_found")


async def test_history_pages_by_seq_and_unread_counts_follow_reads(http: httpx.AsyncClient) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    sent = [await send(http, a, cid, f"m{i}") for i in range(3)]
    own = await send(http, b, cid, "from b")
    assert [m["seq"] for m in [*sent, own]] == [1, 2, 3, 4]

    assert (await conversation(http, b, cid))["unread_count"] == 3  # own messages never count
    assert (await conversation(http, a, cid))["unread_count"] == 1
    listed = ok(await http.get("/conversations", headers=h(b)))["items"][0]
    assert listed["last_message"]["id"] == own["id"] and listed["unread_count"] == 3

    receipt = ok(await http.post(f"/conversations/{cid}/read", json={"up_to_seq": 2}, headers=h(b)))
    assert receipt == {"conversation_id": cid, "last_read_seq": 2, "last_delivered_seq": 2, "unread_count": 1}
    receipt = ok(await http.post(f"/conversations/{cid}/read", json={"up_to_seq": 1}, headers=h(b)))
    assert receipt["last_read_seq"] == 2  # never backwards
    receipt = ok(await http.post(f"/conversations/{cid}/read", json={"up_to_seq": 999}, headers=h(b)))
    assert receipt["last_read_seq"] == 4 and receipt["unread_count"] == 0  # capped at the last message
    assert (await conversation(http, b, cid))["unread_count"] == 0
    problem(await http.post(f"/conversations/{cid}/read", json={"up_to_seq": -1}, headers=h(b)), 400,
            "validation_failed")

    newest = ok(await http.get(f"/conversations/{cid}/messages", params={"limit": 2}, headers=h(a)))
    assert [m["seq"] for m in newest["items"]] == [3, 4] and newest["has_more"] is True
    older = ok(await http.get(f"/conversations/{cid}/messages", params={"cursor": newest["next_cursor"]},
                              headers=h(a)))
    assert [m["seq"] for m in older["items"]] == [1, 2] and older["has_more"] is False
    assert [m["seq"] for m in await history(http, a, cid, before_seq=3)] == [1, 2]
    after = ok(await http.get(f"/conversations/{cid}/messages", params={"after_seq": 1, "limit": 2},
                              headers=h(a)))
    assert [m["seq"] for m in after["items"]] == [2, 3] and after["has_more"] is True
    later = ok(await http.get(f"/conversations/{cid}/messages", params={"cursor": after["next_cursor"]},
                              headers=h(a)))
    assert [m["seq"] for m in later["items"]] == [4]
    first = (await history(http, a, cid))[0]
    assert set(first) >= {"id", "conversation_id", "seq", "sender_id", "body", "media", "reply_to", "reactions",
                          "created_at", "edited_at", "deleted"}


async def test_edit_is_for_the_author_and_not_for_deleted_messages(http: httpx.AsyncClient) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    message = await send(http, a, cid, "first draft")
    path = f"/conversations/{cid}/messages/{message['id']}"
    edited = ok(await http.patch(path, json={"body": "final"}, headers=h(a)))
    assert edited["body"] == "final" and edited["edited_at"] and edited["seq"] == message["seq"]
    assert (await history(http, b, cid))[0]["body"] == "final"
    problem(await http.patch(path, json={"body": "mine now"}, headers=h(b)), 403, "not_author")
    problem(await http.patch(path, json={"body": ""}, headers=h(a)), 400, "empty_message")
    ok(await http.delete(path, params={"scope": "everyone"}, headers=h(a)), 204)
    problem(await http.patch(path, json={"body": "again"}, headers=h(a)), 409, "message_deleted")


async def test_delete_for_me_hides_and_for_everyone_leaves_a_tombstone(http: httpx.AsyncClient) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    one, two, three = [await send(http, a, cid, body) for body in ("one", "two", "three")]
    base = f"/conversations/{cid}/messages"

    ok(await http.delete(f"{base}/{one['id']}", params={"scope": "me"}, headers=h(b)), 204)
    ok(await http.delete(f"{base}/{one['id']}", params={"scope": "me"}, headers=h(b)), 204)  # idempotent
    assert [m["seq"] for m in await history(http, b, cid)] == [2, 3]
    assert [m["seq"] for m in await history(http, a, cid)] == [1, 2, 3]
    assert (await conversation(http, b, cid))["unread_count"] == 2  # hidden ones do not count

    problem(await http.delete(f"{base}/{two['id']}", params={"scope": "everyone"}, headers=h(b)), 403, "not_author")
    problem(await http.delete(f"{base}/{two['id']}", params={"scope": "all"}, headers=h(a)), 400, "validation_failed")
    ok(await http.delete(f"{base}/{two['id']}", params={"scope": "everyone"}, headers=h(a)), 204)
    for user in (a, b):
        tomb = next(m for m in await history(http, user, cid) if m["id"] == two["id"])
        assert tomb["deleted"] is True and tomb["body"] is None and tomb["seq"] == 2 and tomb["media"] == []
    assert (await conversation(http, b, cid))["unread_count"] == 1
    assert three["seq"] == 3


async def test_reactions_one_per_emoji_per_user(http: httpx.AsyncClient) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    message = await send(http, a, cid, "react to me")
    base = f"/conversations/{cid}/messages/{message['id']}/reactions"
    ok(await http.put(f"{base}/👍", headers=h(a)))
    twice = ok(await http.put(f"{base}/👍", headers=h(a)))
    assert twice["reactions"] == {"👍": 1} and twice["my_reactions"] == ["👍"]
    by_b = ok(await http.put(f"{base}/👍", headers=h(b)))
    by_b = ok(await http.put(f"{base}/🎉", headers=h(b)))
    assert by_b["reactions"] == {"👍": 2, "🎉": 1} and sorted(by_b["my_reactions"]) == ["🎉", "👍"]
    seen_by_a = (await history(http, a, cid))[0]
    assert seen_by_a["reactions"] == {"👍": 2, "🎉": 1} and seen_by_a["my_reactions"] == ["👍"]
    removed = ok(await http.delete(f"{base}/👍", headers=h(b)))
    assert removed["reactions"] == {"👍": 1, "🎉": 1} and removed["my_reactions"] == ["🎉"]
    for bad in ("a%20b", "x" * 17, "%09"):
        problem(await http.put(f"{base}/{bad}", headers=h(a)), 400, "invalid_emoji")
    ok(await http.delete(f"/conversations/{cid}/messages/{message['id']}", params={"scope": "everyone"},
                         headers=h(a)), 204)
    problem(await http.put(f"{base}/👍", headers=h(b)), 409, "message_deleted")


async def test_body_limits_have_their_own_codes(http: httpx.AsyncClient) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    path = f"/conversations/{cid}/messages"

    async def post(payload: dict[str, object] | bytes) -> httpx.Response:
        if isinstance(payload, bytes):
            return await http.post(path, content=payload, headers={**h(a), "Content-Type": "application/json"})
        return await http.post(path, json={"client_msg_id": uuid.uuid4().hex, **payload}, headers=h(a))

    problem(await post({}), 400, "empty_message")
    problem(await post({"body": "   "}), 400, "empty_message")
    problem(await post({"body": "x" * 4001}), 400, "message_too_long")
    problem(await post({"body": "nul\u0000byte"}), 400, "invalid_text")
    problem(await post(b'{"client_msg_id": "s1", "body": "lone \\ud800 surrogate"}'), 400, "invalid_text")
    problem(await post(b'{"client_msg_id": "u1", "body": "bad \xff\xfe utf-8"}'), 400, "invalid_text")
    problem(await post({"body": "x", "media_ids": [str(uuid.uuid4()) for _ in range(11)]}), 400, "validation_failed")
    problem(await post({"body": "x", "extra": 1}), 400, "validation_failed")
    assert await history(http, a, cid) == []  # nothing above was stored

    longest = await send(http, a, cid, "é" * 4000)
    assert len(longest["body"]) == 4000
    emoji = await send(http, a, cid, "😀 fine 👍🏽")
    assert emoji["body"] == "😀 fine 👍🏽"
    problem(await post({"media_ids": [str(uuid.uuid4())]}), 400, "invalid_media")  # not the sender's media
    media = [(await upload(http, a, png()))["id"] for _ in range(2)]
    only_media = await send(http, a, cid, None, media_ids=media)
    assert only_media["body"] is None and [m["id"] for m in only_media["media"]] == media
    assert {m["kind"] for m in only_media["media"]} == {"image"}


async def test_reply_to_must_be_in_the_same_conversation(http: httpx.AsyncClient) -> None:
    a, b, c = await users(http, 3)
    ab = (await open_direct(http, a, b))["id"]
    ac = (await open_direct(http, a, c))["id"]
    original = await send(http, a, ab, "question")
    elsewhere = await send(http, a, ac, "other")
    reply = await send(http, b, ab, "answer", reply_to=original["id"])
    assert reply["reply_to"] == original["id"]
    for target in (elsewhere["id"], str(uuid.uuid4())):
        response = await http.post(f"/conversations/{ab}/messages", headers=h(b),
                                   json={"client_msg_id": uuid.uuid4().hex, "body": "x", "reply_to": target})
        problem(response, 400, "invalid_reply_to")
    assert [m["seq"] for m in await history(http, a, ab)] == [1, 2]  # no seq was spent


async def test_retry_with_the_same_client_msg_id_stores_and_delivers_once(http: httpx.AsyncClient,
                                                                          api: ApiProcess) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    async with device(api.base_url, b) as (_, inbox):
        body = {"client_msg_id": "retry-1", "body": "only once"}
        first = await http.post(f"/conversations/{cid}/messages", json=body, headers=h(a))
        again = await http.post(f"/conversations/{cid}/messages", json=body, headers=h(a))
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json() == again.json()
        await inbox.wait_for("message:new", lambda m: m["id"] == first.json()["id"])
        await settle()
        assert [m["id"] for m in inbox.events["message:new"]] == [first.json()["id"]]
    same_key_other_sender = await send(http, b, cid, "mine", client_msg_id="retry-1")
    assert same_key_other_sender["id"] != first.json()["id"]
    assert [m["seq"] for m in await history(http, a, cid)] == [1, 2]  # the retry spent no seq


@pytest.mark.skipif(not HAS_BLOCKS, reason="needs the blocks and privacy modules")
async def test_a_block_stops_messages_both_ways_and_stores_nothing(http: httpx.AsyncClient) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    await send(http, a, cid, "before the block")
    ok(await http.put(f"/users/{uid(a)}/block", headers=h(b)))
    for sender in (a, b):
        response = await http.post(f"/conversations/{cid}/messages", headers=h(sender),
                                   json={"client_msg_id": uuid.uuid4().hex, "body": "after"})
        problem(response, 403, "blocked")
    assert [m["body"] for m in await history(http, b, cid)] == ["before the block"]  # history stays
    assert (await conversation(http, a, cid))["last_seq"] == 1
    problem(await http.post("/groups", json={"name": "g", "member_ids": [uid(a)]}, headers=h(b)), 403, "blocked")
    ok(await http.delete(f"/users/{uid(a)}/block", headers=h(b)), 204)
    assert (await send(http, a, cid, "after the unblock"))["seq"] == 2


async def test_groups_are_created_with_existing_members(http: httpx.AsyncClient) -> None:
    a, b, c, outsider = await users(http, 4)
    created = await http.post("/groups", json={"name": "Trip", "description": "plans",
                                               "member_ids": [uid(b), uid(c), uid(b), uid(a)]}, headers=h(a))
    group = ok(created, 201)
    assert group["kind"] == "group" and group["owner_id"] == uid(a) and group["name"] == "Trip"
    assert (group["members"][0]["user_id"], group["members"][0]["role"]) == (uid(a), "owner")
    assert {m["user_id"] for m in group["members"]} == {uid(a), uid(b), uid(c)}
    assert ok(await http.get(f"/groups/{group['id']}", headers=h(c)))["id"] == group["id"]
    problem(await http.get(f"/groups/{group['id']}", headers=h(outsider)), 404, "group_not_found")

    message = await send(http, b, group["id"], "hello group")
    assert message["seq"] == 1
    assert (await conversation(http, c, group["id"]))["unread_count"] == 1
    problem(await http.post("/groups", json={"name": "x", "member_ids": [str(uuid.uuid4())]}, headers=h(a)),
            400, "unknown_users")
    problem(await http.post("/groups", json={"name": "x", "member_ids": [uid(a)]}, headers=h(a)),
            400, "invalid_members")
    problem(await http.post("/groups", json={"name": "x", "member_ids": [str(uuid.uuid4()) for _ in range(256)]},
                            headers=h(a)), 400, "too_many_members")
    direct = (await open_direct(http, a, b))["id"]
    problem(await http.get(f"/groups/{direct}", headers=h(a)), 404, "group_not_found")


async def test_account_deletion_makes_direct_conversations_read_only_once(
        http: httpx.AsyncClient, db: asyncpg.Connection, ctx: AppContext) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    await send(http, a, cid, "hello")
    kept = await send(http, b, cid, "bye")
    head = ok(await http.get("/sync", headers=h(a)))["next_cursor"]
    ok(await http.request("DELETE", "/users/me", json={"password": b["password"]}, headers=h(b)), 204)
    await settled(db)  # messaging's cleanup runs off the request's path

    seen = await conversation(http, a, cid)
    assert seen["read_only"] is True and [m["user_id"] for m in seen["members"]] == [uid(a)]
    last = (await history(http, a, cid))[-1]
    assert (last["id"], last["body"], last["sender_id"], last["sender_deleted"]) == (kept["id"], "bye", uid(b), True)
    response = await http.post(f"/conversations/{cid}/messages", json={"client_msg_id": "x", "body": "hi?"},
                               headers=h(a))
    problem(response, 403, "read_only")
    changes = ok(await http.get("/sync", params={"cursor": head}, headers=h(a)))
    assert [(i["type"], i["data"]["read_only"]) for i in changes["items"]] == [("conversation:updated", True)]

    row = await db.fetchrow("SELECT name, payload FROM infra.outbox WHERE name = 'users.user_deleted.v1' "
                            "AND payload->>'user_id' = $1", uid(b))
    event = decode_event(row["name"], json.loads(row["payload"]))
    assert await ctx.bus.deliver(event) == []
    assert await ctx.bus.deliver(event) == []
    again = ok(await http.get("/sync", params={"cursor": head}, headers=h(a)))
    assert again["items"] == changes["items"]  # nothing announced twice
    assert await db.fetchval("SELECT count(*) FROM messaging.messages WHERE sender_id = $1 AND NOT sender_deleted",
                             uuid.UUID(uid(b))) == 0
    assert await db.fetchval("SELECT count(*) FROM infra.inbox WHERE listener = "
                             "'messaging.forget_user_on_user_deleted' AND event_id = $1", event.event_id) == 1


async def test_concurrent_senders_get_gapless_seqs(http: httpx.AsyncClient) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    keys = [f"k{i}" for i in range(15)]

    async def post(user: dict[str, object], key: str) -> httpx.Response:
        return await http.post(f"/conversations/{cid}/messages", json={"client_msg_id": key, "body": key},
                               headers=h(user))  # type: ignore[arg-type]

    responses = await asyncio.gather(*(post(u, k) for k in keys for u in (a, b, a)))  # a retries each key
    assert sorted(r.status_code for r in responses).count(201) == 30
    stored = await history(http, b, cid)
    assert [m["seq"] for m in stored] == list(range(1, 31))
    assert len({(m["sender_id"], m["client_msg_id"]) for m in stored}) == 30


async def test_conversations_are_listed_by_last_activity_in_pages(http: httpx.AsyncClient) -> None:
    me, *others = await users(http, 4)
    ids = [(await open_direct(http, me, other))["id"] for other in others]
    await send(http, others[0], ids[0], "the oldest conversation is active again")
    first = ok(await http.get("/conversations", params={"limit": 2}, headers=h(me)))
    assert [c["id"] for c in first["items"]] == [ids[0], ids[2]] and first["next_cursor"]
    rest = ok(await http.get("/conversations", params={"limit": 2, "cursor": first["next_cursor"]}, headers=h(me)))
    assert [c["id"] for c in rest["items"]] == [ids[1]] and rest["next_cursor"] is None
    assert first["items"][0]["last_message"]["body"] == "the oldest conversation is active again"
    assert first["items"][0]["unread_count"] == 1 and first["items"][1]["last_message"] is None
    problem(await http.get("/conversations", params={"cursor": "garbage"}, headers=h(me)), 400, "invalid_cursor")


async def test_message_created_is_published_once_while_someone_listens(
        http: httpx.AsyncClient, db: asyncpg.Connection, ctx: AppContext) -> None:
    a, b, c = await users(http, 3)
    group = ok(await http.post("/groups", json={"name": "g", "member_ids": [uid(b), uid(c)]}, headers=h(a)), 201)
    heard: list[MessageCreated] = []

    async def collect(event: MessageCreated) -> None:  # test listener: records what it hears
        heard.append(event)

    ctx.bus.subscribe_idempotent(MessageCreated, "test.collect_message_created", collect)
    sender = SendService(ctx, Fanout(SyncStream(ctx.redis), ctx.realtime))
    data = SendMessage(client_msg_id="published", body="to the outbox")
    first, created = await sender.send(uuid.UUID(uid(a)), uuid.UUID(group["id"]), data)
    again, created_again = await sender.send(uuid.UUID(uid(a)), uuid.UUID(group["id"]), data)
    assert (created, created_again) == (True, False) and again.id == first.id
    assert [(e.message_id, e.seq, e.sender_id) for e in heard] == [(first.id, 1, first.sender_id)]
    assert sorted(map(str, heard[0].recipient_ids)) == sorted([uid(b), uid(c)])
    assert await db.fetchval("SELECT count(*) FROM infra.outbox WHERE name = $1 AND payload->>'message_id' = $2",
                             MessageCreated.name, str(first.id)) == 1
    assert [m["id"] for m in await history(http, c, group["id"])] == [str(first.id)]
