"""Profiles: read and edit one's own, see others', search with a cursor, delete the account."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from src.common.events.base import decode_event
from src.common.events.users import UserRegistered
from src.common.ids import new_id
from src.infra.context import AppContext
from tests.e2e.harness import auth_headers, signup, unique_name
from tests.e2e.test_auth import assert_problem, signin

PUBLIC_FIELDS = {"id", "username", "display_name", "quote", "work", "school", "location", "social_links",
                 "avatar_url", "background_url", "avatar_media_id", "background_media_id", "followers_count",
                 "following_count", "created_at"}


@pytest.fixture(scope="module")
async def viewer(http: httpx.AsyncClient) -> dict[str, Any]:
    """A signed-up user for read-only checks."""
    return await signup(http)


async def test_own_profile_and_edits(http: httpx.AsyncClient) -> None:
    account = await signup(http, display_name="Old Name")
    headers = auth_headers(account["access_token"])
    me = await http.get("/users/me", headers=headers)
    assert me.status_code == 200, me.text
    assert set(me.json()) == PUBLIC_FIELDS | {"email"}
    assert me.json()["email"] == account["user"]["email"]
    assert me.json()["display_name"] == "Old Name"

    patch = {"display_name": "Zoë 🌱", "quote": "Less is more", "work": "Baker", "school": None,
             "location": "Lyon", "social_links": {"github": "https://github.com/zoe"}}
    changed = await http.patch("/users/me", headers=headers, json=patch)
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in patch} == patch

    # Absent fields stay; null clears.
    cleared = await http.patch("/users/me", headers=headers, json={"quote": None})
    assert cleared.status_code == 200
    fresh = (await http.get("/users/me", headers=headers)).json()
    assert fresh["quote"] is None
    assert fresh["work"] == "Baker" and fresh["display_name"] == "Zoë 🌱"
    assert fresh["social_links"] == {"github": "https://github.com/zoe"}


@pytest.mark.parametrize(("patch", "field"), [
    ({"display_name": None}, "display_name"),
    ({"display_name": ""}, "display_name"),
    ({"display_name": "x" * 65}, "display_name"),
    ({"quote": "q" * 281}, "quote"),
    ({"work": 42}, "work"),
    ({"location": "l" * 101}, "location"),
    ({"social_links": {f"site{i}": "https://example.com" for i in range(11)}}, "social_links"),
    ({"social_links": {"site": "u" * 301}}, "social_links"),
    ({"social_links": ["https://example.com"]}, "social_links"),
    ({"email": "new@example.com"}, "email"),
], ids=lambda v: str(v)[:30])
async def test_invalid_edits_are_a_400_naming_the_field(http: httpx.AsyncClient, viewer: dict[str, Any],
                                                        patch: dict[str, Any], field: str) -> None:
    response = await http.patch("/users/me", headers=auth_headers(viewer["access_token"]), json=patch)
    body = assert_problem(response, 400, "validation_failed")
    assert re.split(r"[.[]", body["field"])[0] == field, body
    me = (await http.get("/users/me", headers=auth_headers(viewer["access_token"]))).json()
    assert me["display_name"] == viewer["user"]["display_name"]  # nothing changed


async def test_another_users_public_profile(http: httpx.AsyncClient, viewer: dict[str, Any]) -> None:
    other = await signup(http, display_name="Public Person")
    await http.patch("/users/me", headers=auth_headers(other["access_token"]), json={"work": "Pilot"})
    response = await http.get(f"/users/{other['user']['id']}", headers=auth_headers(viewer["access_token"]))
    assert response.status_code == 200, response.text
    profile = response.json()
    assert set(profile) == PUBLIC_FIELDS  # no email
    assert (profile["username"], profile["display_name"], profile["work"]) == (
        other["user"]["username"], "Public Person", "Pilot")
    own = await http.get(f"/users/{viewer['user']['id']}", headers=auth_headers(viewer["access_token"]))
    assert own.status_code == 200 and own.json()["id"] == viewer["user"]["id"]


async def test_unknown_profile_is_not_found(http: httpx.AsyncClient, viewer: dict[str, Any]) -> None:
    response = await http.get(f"/users/{uuid.uuid4()}", headers=auth_headers(viewer["access_token"]))
    assert_problem(response, 404, "user_not_found")
    assert_problem(await http.get(f"/users/{uuid.uuid4()}"), 401)


# -- search ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def crowd(migrated_db: str) -> dict[str, Any]:
    """105 profiles sharing a unique prefix (written directly: 105 sign-ups would cost argon2 time)."""
    prefix = unique_name("crowd")[:14]
    names = [f"{prefix}_{i:03d}" for i in range(105)]
    conn = await asyncpg.connect(migrated_db)
    try:
        await conn.executemany(
            "INSERT INTO users.profiles (id, username, email, display_name) VALUES ($1, $2, $3, $4)",
            [(new_id(), name, f"{name}@example.com", f"Crowd member {i}") for i, name in enumerate(names)])
    finally:
        await conn.close()
    return {"prefix": prefix, "names": names}


async def _search(http: httpx.AsyncClient, token: str, **params: Any) -> httpx.Response:
    return await http.get("/users", headers=auth_headers(token), params=params)


async def test_search_by_prefix_pages_through_everything(http: httpx.AsyncClient, viewer: dict[str, Any],
                                                         crowd: dict[str, Any]) -> None:
    token, seen, cursor, pages = viewer["access_token"], [], None, 0
    while True:
        params = {"q": crowd["prefix"].upper(), "limit": 17, **({"cursor": cursor} if cursor else {})}
        response = await _search(http, token, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 17
        seen += [item["username"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 7
    assert seen == crowd["names"]  # each once, in order
    assert set(page["items"][0]) == PUBLIC_FIELDS


async def test_search_limit_is_capped_at_100(http: httpx.AsyncClient, viewer: dict[str, Any],
                                             crowd: dict[str, Any]) -> None:
    token = viewer["access_token"]
    first = (await _search(http, token, q=crowd["prefix"], limit=1000)).json()
    assert len(first["items"]) == 100 and first["next_cursor"]
    rest = (await _search(http, token, q=crowd["prefix"], limit=1000, cursor=first["next_cursor"])).json()
    assert [i["username"] for i in first["items"] + rest["items"]] == crowd["names"]
    assert rest["next_cursor"] is None
    default = (await _search(http, token, q=crowd["prefix"])).json()
    assert len(default["items"]) == 20
    for bad in (0, -5, "ten"):
        assert_problem(await _search(http, token, q=crowd["prefix"], limit=bad), 400, field="limit")


async def test_search_matches_display_names_and_escapes_wildcards(http: httpx.AsyncClient,
                                                                  viewer: dict[str, Any],
                                                                  crowd: dict[str, Any]) -> None:
    token = viewer["access_token"]
    unique = unique_name("Display")
    person = await signup(http, display_name=f"{unique} Person")
    by_display = (await _search(http, token, q=unique.lower())).json()
    assert [i["id"] for i in by_display["items"]] == [person["user"]["id"]]
    # `_` and `%` are literal characters, not wildcards.
    assert (await _search(http, token, q=crowd["prefix"] + "%")).json()["items"] == []
    literal = (await _search(http, token, q=crowd["prefix"] + "_10")).json()["items"]
    assert [i["username"] for i in literal] == [f"{crowd['prefix']}_{n}" for n in range(100, 105)]
    assert (await _search(http, token, q=unique_name("nobody"))).json() == {"items": [], "next_cursor": None}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("cursor", ["garbage!!", "abc", _b64(b"[1]"), _b64(b"{}"), _b64(b'{"u": "a"}'),
                                    _b64(b'{"u": "a", "id": "not-a-uuid"}'), _b64(b'{"u": 1, "id": 2}')])
async def test_bad_cursor_is_a_400(http: httpx.AsyncClient, viewer: dict[str, Any], cursor: str) -> None:
    response = await _search(http, viewer["access_token"], q="a", cursor=cursor)
    assert_problem(response, 400, "invalid_cursor", "cursor")


async def test_search_needs_a_token(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/users", params={"q": "a"}), 401)


# -- deletion --------------------------------------------------------------------------------


async def test_delete_account(http: httpx.AsyncClient, viewer: dict[str, Any]) -> None:
    account = await signup(http)
    user = account["user"]
    other_session = (await signin(http, user["username"], account["password"])).json()
    headers = auth_headers(account["access_token"])

    wrong = await http.request("DELETE", "/users/me", headers=headers, json={"password": "Not-My-Password-1"})
    assert_problem(wrong, 401, "invalid_credentials")
    assert (await http.get("/users/me", headers=headers)).status_code == 200

    done = await http.request("DELETE", "/users/me", headers=headers, json={"password": account["password"]})
    assert done.status_code == 204, done.text
    for session in (account, other_session):
        assert_problem(await http.get("/users/me", headers=auth_headers(session["access_token"])), 401)
        assert (await http.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})).status_code == 401
    assert_problem(await signin(http, user["username"], account["password"]), 401, "invalid_credentials")
    seen_by_other = await http.get(f"/users/{user['id']}", headers=auth_headers(viewer["access_token"]))
    assert_problem(seen_by_other, 404, "user_not_found")
    found = (await _search(http, viewer["access_token"], q=user["username"])).json()
    assert found["items"] == []
    # The names are free again.
    again = await signup(http, user["username"], email=user["email"])
    assert again["user"]["id"] != user["id"]


async def test_delete_account_needs_the_password_field(http: httpx.AsyncClient,
                                                       viewer: dict[str, Any]) -> None:
    response = await http.request("DELETE", "/users/me", headers=auth_headers(viewer["access_token"]), json={})
    assert_problem(response, 400, field="password")


# -- listeners delivered twice ---------------------------------------------------------------





async def _published(conn: asyncpg.Connection, name: str, user_id: str) -> list[Any]:
    rows = await conn.fetch("SELECT payload FROM infra.outbox WHERE name = $1 AND payload->>'user_id' = $2"
                            " ORDER BY id", name, user_id)
    return [decode_event(name, json.loads(row["payload"])) for row in rows]


async def test_auth_and_users_listeners_have_one_effect_per_event(http: httpx.AsyncClient, ctx: AppContext,
                                                                  migrated_db: str) -> None:
    conn = await asyncpg.connect(migrated_db)
    try:
        # A registration heard twice makes one profile (and keeps the first version of it).
        name = unique_name("twice")
        registered = UserRegistered(user_id=new_id(), username=name, email=f"{name}@example.com",
                                    display_name="First")
        assert await ctx.bus.deliver(registered) == []
        again = UserRegistered(event_id=registered.event_id, user_id=registered.user_id, username=name,
                               email=f"{name}@example.com", display_name="Second")
        assert await ctx.bus.deliver(again) == []
        rows = await conn.fetch("SELECT display_name FROM users.profiles WHERE id = $1", registered.user_id)
        assert [r["display_name"] for r in rows] == ["First"]

        # Sign-out and account deletion, replayed after the API handled them: nothing more happens.
        account = await signup(http)
        user_id = account["user"]["id"]
        spare = (await signin(http, account["user"]["username"], account["password"])).json()
        assert (await http.post("/auth/signout", headers=auth_headers(spare["access_token"]))).status_code == 204
        done = await http.request("DELETE", "/users/me", headers=auth_headers(account["access_token"]),
                                  json={"password": account["password"]})
        assert done.status_code == 204
        revocations = await _published(conn, "auth.sessions_revoked.v1", user_id)
        deletions = await _published(conn, "users.user_deleted.v1", user_id)
        assert len(revocations) == 2 and len(deletions) == 1
        for event in [*revocations, *deletions]:
            assert await ctx.bus.deliver(event) == []
            assert await ctx.bus.deliver(event) == []
        assert len(await _published(conn, "auth.sessions_revoked.v1", user_id)) == 2  # no new revocation
        assert await conn.fetchval("SELECT count(*) FROM auth.credentials WHERE user_id = $1",
                                   uuid.UUID(user_id)) == 0
        for session in (account, spare):
            assert_problem(await http.get("/users/me", headers=auth_headers(session["access_token"])), 401)
    finally:
        await conn.close()
