"""The notification kinds heard from other modules (reaction, comment, call, group), end to end:
the real API and worker (their own broker database, short call ring timeout), pushes to a fake FCM.

"Nothing arrived" is asserted after a later marker arrived (a push the same pipeline sends after).
"""
# ruff: noqa: F811 (fixtures are imported)

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.e2e.calls_support import CALL_ENV, close, device
from tests.e2e.harness import ApiProcess, User, new_user
from tests.e2e.push_fakes import FakeFcm, FakeWebPush
from tests.e2e.test_notifications import (  # noqa: F401 (fixtures)
    api,
    fcm,
    fcm_device,
    http,
    kind_is,
    notifications,
    ok,
    webpush,
    worker,
)


@pytest.fixture(scope="module")
def env(app_env: dict[str, str], fcm: FakeFcm, webpush: FakeWebPush) -> dict[str, str]:
    redis_url = app_env["REDIS_URL"].rsplit("/", 1)[0] + "/8"  # our own broker queues
    return {**app_env, **fcm.env(), **webpush.env(), **CALL_ENV, "REDIS_URL": redis_url}


async def of_kind(http: httpx.AsyncClient, user: User, kind: str) -> list[dict[str, Any]]:
    return [n for n in (await notifications(http, user, limit=50))["items"] if n["kind"] == kind]


async def settled(http: httpx.AsyncClient, user: User, kind: str, actor_count: int,
                  timeout: float = 20) -> dict[str, Any]:  # noqa: ASYNC109
    """The one notification of `kind` once it names `actor_count` people."""
    deadline = time.monotonic() + timeout
    while True:
        found = await of_kind(http, user, kind)
        if found and found[0]["actor_count"] >= actor_count:
            assert len(found) == 1, found
            return found[0]
        assert time.monotonic() < deadline, f"{kind} notification: {found}"
        await asyncio.sleep(0.1)


async def post_of(http: httpx.AsyncClient, author: User) -> str:
    return str(ok(await http.post("/posts", json={"privacy": "public", "body": "look"}, headers=author.headers),
                  201)["id"])


async def test_twelve_reactions_collapse_into_one_notification(http: httpx.AsyncClient, fcm: FakeFcm) -> None:
    author = await new_user(http)
    token = await fcm_device(http, author)
    post_id = await post_of(http, author)
    reactors = [await new_user(http) for _ in range(12)]
    await asyncio.gather(*(http.put(f"/posts/{post_id}/reactions", json={"type": "love"}, headers=r.headers)
                           for r in reactors))
    note = await settled(http, author, "reaction", 12)
    assert note["text"].endswith(" and 11 others reacted to your post"), note["text"]
    assert (note["subject_id"], note["data"]["post_id"], note["count"]) == (post_id, post_id, 12)
    assert {a["id"] for a in note["actors"]} <= {r.id for r in reactors}
    push = await fcm.wait_for(kind_is("reaction", token))
    assert push.data["post_id"] == post_id
    # The author's own reaction tells them nothing (checked after a later marker: a comment).
    ok(await http.put(f"/posts/{post_id}/reactions", json={"type": "wow"}, headers=author.headers))
    ok(await http.post(f"/posts/{post_id}/comments", json={"body": "marker"}, headers=reactors[0].headers), 201)
    await settled(http, author, "comment", 1)
    assert (await settled(http, author, "reaction", 12))["actor_count"] == 12


async def test_a_comment_notifies_the_post_author_but_not_their_own(http: httpx.AsyncClient, fcm: FakeFcm) -> None:
    author, commenter = await new_user(http), await new_user(http)
    token = await fcm_device(http, author)
    post_id = await post_of(http, author)
    ok(await http.post(f"/posts/{post_id}/comments", json={"body": "mine"}, headers=author.headers), 201)
    comment = ok(await http.post(f"/posts/{post_id}/comments", json={"body": "nice"}, headers=commenter.headers), 201)
    push = await fcm.wait_for(kind_is("comment", token))
    assert (push.data["post_id"], push.data["comment_id"]) == (post_id, comment["id"])
    note = await settled(http, author, "comment", 1)
    assert [a["id"] for a in note["actors"]] == [commenter.id] and note["count"] == 1
    assert note["text"].endswith(" commented on your post")
    assert [p.data["kind"] for p in fcm.for_token(token)] == ["comment"]
    assert await of_kind(http, commenter, "comment") == []


async def test_a_missed_call_notifies_the_callee(http: httpx.AsyncClient, api: ApiProcess, fcm: FakeFcm) -> None:
    caller_user, callee_user = await new_user(http), await new_user(http)
    token = await fcm_device(http, callee_user)
    caller, callee = await device(api, caller_user), await device(api, callee_user)
    try:
        call_id = str((await caller.ok("call:invite", {"user_id": callee_user.id, "media": "audio"}))["call_id"])
        await callee.events.wait_for("call:incoming", lambda c: c["id"] == call_id)
        assert await callee.wait_ended(call_id, timeout=30) == "missed"
    finally:
        await close(caller, callee)
    push = await fcm.wait_for(kind_is("call", token))
    assert push.data["call_id"] == call_id and "conversation_id" not in push.data  # a 1:1 call: none
    note = await settled(http, callee_user, "call", 1)
    assert [a["id"] for a in note["actors"]] == [caller_user.id] and note["subject_id"] == call_id
    assert note["data"] == {"call_id": call_id, "conversation_id": None}
    assert note["text"].endswith(" tried to call you")
    assert await of_kind(http, caller_user, "call") == []


async def test_being_added_to_a_group_notifies_the_added_user(http: httpx.AsyncClient, fcm: FakeFcm) -> None:
    owner, member, added = await new_user(http), await new_user(http), await new_user(http)
    token = await fcm_device(http, added)
    gid = str(ok(await http.post("/groups", json={"name": "team", "member_ids": [member.id]}, headers=owner.headers),
                 201)["id"])
    ok(await http.post(f"/groups/{gid}/members", json={"user_ids": [added.id]}, headers=owner.headers))
    push = await fcm.wait_for(kind_is("group", token))
    assert push.data["group_id"] == gid
    note = await settled(http, added, "group", 1)
    assert [a["id"] for a in note["actors"]] == [owner.id] and note["subject_id"] == gid
    assert note["text"].endswith(" added you to a group")
    assert await of_kind(http, owner, "group") == []
