"""Privacy settings and permissions over the real API: own settings only, the rules, account deletion."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from src.bootstrap import MODULES
from src.common.events.base import decode_event
from src.common.queries.privacy import CanCall, CanMessage, CanViewProfile, Decision, GetPrivacySettings
from src.infra.context import AppContext
from tests.e2e.harness import auth_headers, settled, signup

DEFAULTS = {"who_can_message": "everyone", "who_can_call": "everyone", "profile_visibility": "everyone",
            "show_last_seen": True, "read_receipts": True}
ALL_ALLOWED = {"can_message": True, "can_call": True, "can_view_profile": True}
has_friendship = any(module.name == "friendship" for module in MODULES)








def uid(user: dict[str, Any]) -> str:
    return str(user["user"]["id"])


def h(user: dict[str, Any]) -> dict[str, str]:
    return auth_headers(user["access_token"])


async def permissions(http: httpx.AsyncClient, actor: dict[str, Any], target: dict[str, Any]) -> dict[str, bool]:
    response = await http.get(f"/privacy/permissions/{uid(target)}", headers=h(actor))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def patch(http: httpx.AsyncClient, user: dict[str, Any], **changes: Any) -> dict[str, Any]:
    response = await http.patch("/privacy/settings", json=changes, headers=h(user))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def befriend(http: httpx.AsyncClient, a: dict[str, Any], b: dict[str, Any]) -> None:
    sent = await http.post("/friends/requests", json={"user_id": uid(b)}, headers=h(a))
    assert sent.status_code == 201, sent.text
    accepted = await http.post(f"/friends/requests/{sent.json()['id']}/accept", headers=h(b))
    assert accepted.status_code == 200, accepted.text


async def test_settings_default_and_patch_changes_only_your_own(http: httpx.AsyncClient,
                                                                db: asyncpg.Connection) -> None:
    a, b = await signup(http), await signup(http)
    assert (await http.get("/privacy/settings", headers=h(a))).json() == DEFAULTS
    stored = "SELECT count(*) FROM privacy.settings WHERE user_id = $1"
    assert await db.fetchval(stored, uuid.UUID(uid(a))) == 0  # defaults are not stored

    changed = await patch(http, a, who_can_message="friends", show_last_seen=False)
    assert changed == {**DEFAULTS, "who_can_message": "friends", "show_last_seen": False}
    assert (await http.get("/privacy/settings", headers=h(a))).json() == changed
    assert (await http.get("/privacy/settings", headers=h(b))).json() == DEFAULTS
    assert await db.fetchval(stored, uuid.UUID(uid(b))) == 0

    assert await patch(http, a) == changed  # an empty patch changes nothing
    assert await patch(http, a, who_can_message="friends") == changed  # nor does the same value
    events = "SELECT count(*) FROM infra.outbox WHERE name = 'privacy.settings_changed.v1' AND payload->>'user_id' = $1"
    assert await db.fetchval(events, uid(a)) == 1

    assert await patch(http, a, who_can_message="everyone", show_last_seen=True) == DEFAULTS
    assert await db.fetchval(stored, uuid.UUID(uid(a))) == 0  # back on the defaults: no row left
    assert await db.fetchval(events, uid(a)) == 2


async def test_settings_input_is_validated_and_no_route_takes_another_user(http: httpx.AsyncClient) -> None:
    a, b = await signup(http), await signup(http)
    for body, field in (({"who_can_message": "strangers"}, "who_can_message"), ({"read_receipts": "yes"},
                        "read_receipts"), ({"user_id": uid(b), "who_can_call": "nobody"}, "user_id")):
        response = await http.patch("/privacy/settings", json=body, headers=h(a))
        assert response.status_code == 400, body
        assert response.json()["code"] == "validation_failed"
        assert response.json()["field"] == field
    assert (await http.get("/privacy/settings", headers=h(b))).json() == DEFAULTS
    assert (await http.patch(f"/privacy/settings/{uid(b)}", json={"who_can_call": "nobody"},
                             headers=h(a))).status_code in (404, 405)
    assert (await http.get("/privacy/settings")).status_code == 401
    assert (await http.patch("/privacy/settings", json={})).status_code == 401


async def test_permissions_follow_everyone_and_nobody(http: httpx.AsyncClient) -> None:
    a, b = await signup(http), await signup(http)
    assert await permissions(http, a, b) == ALL_ALLOWED
    await patch(http, b, who_can_message="nobody")
    assert await permissions(http, a, b) == {**ALL_ALLOWED, "can_message": False}
    await patch(http, b, who_can_call="nobody", profile_visibility="nobody")
    assert await permissions(http, a, b) == dict.fromkeys(ALL_ALLOWED, False)
    assert (await http.get(f"/users/{uid(b)}", headers=h(a))).status_code == 404
    assert await permissions(http, b, b) == ALL_ALLOWED  # you may always see (and reach) yourself
    assert (await http.get(f"/users/{uid(b)}", headers=h(b))).status_code == 200
    assert await permissions(http, b, a) == ALL_ALLOWED  # a's settings decide about a, not b's


async def test_permissions_of_an_unknown_user_are_404(http: httpx.AsyncClient) -> None:
    a = await signup(http)
    response = await http.get(f"/privacy/permissions/{uuid.uuid4()}", headers=h(a))
    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"
    assert (await http.get(f"/privacy/permissions/{uid(a)}")).status_code == 401


@pytest.mark.skipif(not has_friendship, reason="the friendship module is not wired yet")
async def test_friends_only_settings_let_friends_in(http: httpx.AsyncClient) -> None:
    a, b, stranger = await signup(http), await signup(http), await signup(http)
    await patch(http, b, who_can_message="friends", who_can_call="friends", profile_visibility="friends")
    assert await permissions(http, a, b) == dict.fromkeys(ALL_ALLOWED, False)  # cached: not friends yet
    await befriend(http, a, b)
    assert await permissions(http, a, b) == ALL_ALLOWED  # the acceptance dropped the cached answers
    assert (await http.get(f"/users/{uid(b)}", headers=h(a))).status_code == 200
    assert await permissions(http, stranger, b) == dict.fromkeys(ALL_ALLOWED, False)
    assert (await http.get(f"/users/{uid(b)}", headers=h(stranger))).status_code == 404
    assert (await http.delete(f"/friends/{uid(a)}", headers=h(b))).status_code == 204
    assert await permissions(http, a, b) == dict.fromkeys(ALL_ALLOWED, False)


async def test_block_denies_with_reason_blocked_both_ways(http: httpx.AsyncClient, ctx: AppContext) -> None:
    a, b = await signup(http), await signup(http)
    await patch(http, b, who_can_call="nobody")
    actor, target = uuid.UUID(uid(a)), uuid.UUID(uid(b))
    assert await ctx.queries.ask(CanMessage(actor_id=actor, target_id=target)) == Decision(allowed=True)
    assert await ctx.queries.ask(CanCall(actor_id=actor, target_id=target)) == Decision(False, "not_allowed")
    await http.put(f"/users/{uid(b)}/block", headers=h(a))
    for query in (CanMessage, CanCall, CanViewProfile):
        assert await ctx.queries.ask(query(actor_id=actor, target_id=target)) == Decision(False, "blocked")
        assert await ctx.queries.ask(query(actor_id=target, target_id=actor)) == Decision(False, "blocked")
    assert await ctx.queries.ask(CanViewProfile(actor_id=actor, target_id=actor)) == Decision(allowed=True)
    unknown = uuid.uuid4()
    assert await ctx.queries.ask(CanMessage(actor_id=actor, target_id=unknown)) == Decision(False, "not_allowed")


async def test_get_privacy_settings_answers_and_deletion_removes_the_row_once(
        http: httpx.AsyncClient, ctx: AppContext, db: asyncpg.Connection) -> None:
    a = await signup(http)
    user_id = uuid.UUID(uid(a))
    assert (await ctx.queries.ask(GetPrivacySettings(user_id=user_id))).read_receipts is True
    assert await ctx.redis.exists(f"privacy:settings:{user_id}")  # cached: the change below must still show
    await patch(http, a, read_receipts=False, profile_visibility="friends")
    view = await ctx.queries.ask(GetPrivacySettings(user_id=user_id))
    assert (view.read_receipts, view.profile_visibility) == (False, "friends")

    stored = "SELECT count(*) FROM privacy.settings WHERE user_id = $1"
    assert await db.fetchval(stored, user_id) == 1
    deleted = await http.request("DELETE", "/users/me", json={"password": a["password"]}, headers=h(a))
    assert deleted.status_code == 204
    await settled(db)
    assert await db.fetchval(stored, user_id) == 0

    row = await db.fetchrow("SELECT name, payload FROM infra.outbox WHERE name = 'users.user_deleted.v1' "
                            "AND payload->>'user_id' = $1", str(user_id))
    event = decode_event(row["name"], json.loads(row["payload"]))
    # A row for that id can only come back through a bug; redelivery must change nothing.
    await db.execute("INSERT INTO privacy.settings (user_id, read_receipts) VALUES ($1, false)", user_id)
    assert await ctx.bus.deliver(event) == []
    assert await ctx.bus.deliver(event) == []
    assert await db.fetchval(stored, user_id) == 1  # the inbox skipped the handled event
    await db.execute("DELETE FROM privacy.settings WHERE user_id = $1", user_id)
