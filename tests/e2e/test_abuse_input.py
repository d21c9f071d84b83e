"""Malformed input is a 400 naming the field, never a 500; responses are hardened (issue 9)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest

from tests.e2e.harness import ApiProcess, auth_headers, signup, unique_name
from tests.e2e.messaging_support import open_direct, send
from tests.e2e.test_auth import assert_problem


def cursor(position: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


async def test_username_with_a_trailing_newline_is_refused(http: httpx.AsyncClient) -> None:
    name = unique_name()
    response = await http.post("/auth/signup", json={"username": name + "\n", "email": f"{name}@example.com",
                                                     "password": "Correct-Horse-Battery-9"})
    assert_problem(response, 400, field="username")


@pytest.mark.parametrize(("body", "field"), [
    (b'{"display_name": "a\\u0000b"}', "display_name"),
    (b'{"social_links": {"site": "x\\u0000"}}', "social_links.site"),
    (b'{"quote": ' + b"[" * 1000 + b"]" * 1000 + b"}", None),
    (b'{"quote": "caf\xe9"}', None),
])
@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
async def test_malformed_bodies_are_400s(http: httpx.AsyncClient, body: bytes, field: str | None,
                                         content_type: str) -> None:
    me = await signup(http)
    response = await http.patch("/users/me", content=body, headers={
        **auth_headers(me["access_token"]), "content-type": content_type})
    assert_problem(response, 400, field=field)


async def test_nul_in_a_query_is_a_400_naming_it(http: httpx.AsyncClient) -> None:
    me = await signup(http)
    response = await http.get("/users", params={"q": "a\x00"}, headers=auth_headers(me["access_token"]))
    assert_problem(response, 400, "invalid_text", field="q")


async def test_out_of_range_numbers_and_bad_cursors_are_400s(http: httpx.AsyncClient) -> None:
    alice, bob = await signup(http), await signup(http)
    conversation_id = (await open_direct(http, alice, bob))["id"]
    await send(http, alice, conversation_id)
    headers = auth_headers(alice["access_token"])
    messages = f"/conversations/{conversation_id}/messages"
    for params, field in [({"before_seq": 2**63}, "before_seq"), ({"after_seq": 2**64}, "after_seq"),
                          ({"cursor": cursor({"b": 2**63})}, "cursor"), ({"cursor": cursor({"a": "x"})}, "cursor")]:
        assert_problem(await http.get(messages, params=params, headers=headers), 400, field=field)
    bad = [("/sync", {"p": 2**64}), ("/sync", {"p": "1"}), ("/users", {"u": "a\x00", "id": str(uuid.uuid4())}),
           ("/users", {"u": 5, "id": 7}), ("/conversations", {"at": "2026-01-01T00:00:00", "id": str(uuid.uuid4())}),
           ("/conversations", {"at": [], "id": None}), ("/friends", {"t": "2026-01-01", "id": str(uuid.uuid4())}),
           (f"/users/{alice['user']['id']}/followers", {"t": 1e308, "id": "x"}), ("/search", {"id": "\ud800"})]
    for path, position in bad:
        encoded = base64.urlsafe_b64encode(json.dumps(position).encode()).decode()
        params = {"cursor": encoded, **({"q": "hi"} if path == "/search" else {})}
        assert_problem(await http.get(path, params=params, headers=headers), 400, field="cursor")


async def test_reactions_must_be_one_real_emoji(http: httpx.AsyncClient) -> None:
    alice, bob = await signup(http), await signup(http)
    conversation_id = (await open_direct(http, alice, bob))["id"]
    message = await send(http, alice, conversation_id)
    url = f"/conversations/{conversation_id}/messages/{message['id']}/reactions"
    headers = auth_headers(alice["access_token"])
    for emoji in ("👍", "❤️", "👩‍👩‍👧"):
        assert (await http.put(f"{url}/{emoji}", headers=headers)).status_code == 200, emoji
    for emoji in ("<script>", "a", "👍👍", "\u200b", "%01", "🙂x"):
        assert_problem(await http.put(f"{url}/{emoji}", headers=headers), 400, "invalid_emoji")


async def test_token_responses_are_not_cached_and_json_is_locked_down(http: httpx.AsyncClient) -> None:
    me = await signup(http)
    name = unique_name()
    created = await http.post("/auth/signup", json={"username": name, "email": f"{name}@example.com",
                                                    "password": "Correct-Horse-Battery-9"})
    assert "no-store" in created.headers["cache-control"]
    refreshed = await http.post("/auth/refresh", json={"refresh_token": me["refresh_token"]})
    assert "no-store" in refreshed.headers["cache-control"]
    for response in (created, await http.get("/users/me"), await http.get("/users/me", headers=auth_headers(
            me["access_token"]))):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_oversized_headers_are_refused(http: httpx.AsyncClient) -> None:
    response = await http.get("/users/me", headers={"X-Filler": "x" * 20_000})
    assert_problem(response, 431, "headers_too_large")


async def test_cors_origins_come_from_a_setting(api: ApiProcess, api_factory: Callable[..., ApiProcess]) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    async with httpx.AsyncClient(timeout=15) as client:
        default = await client.options(f"{api.base_url}/api/v1/auth/signin", headers=preflight)
        assert "access-control-allow-origin" not in default.headers
        socket_poll = await client.get(f"{api.base_url}/socket.io/?EIO=4&transport=polling",
                                       headers={"Origin": "https://evil.example"})
        assert socket_poll.status_code >= 400
        configured = api_factory(CORS_ORIGINS="https://app.example")
        allowed = await client.options(f"{configured.base_url}/api/v1/auth/signin",
                                       headers={**preflight, "Origin": "https://app.example"})
        assert allowed.headers.get("access-control-allow-origin") == "https://app.example"
        assert allowed.headers.get("access-control-allow-credentials") != "true"
        refused = await client.options(f"{configured.base_url}/api/v1/auth/signin", headers=preflight)
        assert refused.headers.get("access-control-allow-origin") != "https://evil.example"


async def test_no_query_string_or_token_reaches_the_api_log(http: httpx.AsyncClient, api: ApiProcess) -> None:
    me = await signup(http)
    secret = uuid.uuid4().hex
    await http.get("/users", params={"q": secret, "cursor": "%%%"}, headers=auth_headers(me["access_token"]))
    await http.get("/no-such-route", params={"token": secret})
    assert secret not in api.output(lines=2000)
    assert me["access_token"] not in api.output(lines=2000)
