"""Abuse resistance (issue 9): limits that hold under concurrency, on every write, search and
socket event, counted per real client address (proxies trusted only when configured)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.harness import ApiProcess, auth_headers, connect_socket, signup, unique_name
from tests.e2e.messaging_support import call, open_direct
from tests.e2e.test_auth import assert_problem, signin

# Rules unlike any other test's: counters are shared through Redis, keyed by rule.
STRICT = {
    "SIGNIN_LIMIT_PER_IP": "12/15minutes",
    "SIGNUP_LIMIT_PER_IP": "3/hour",
    "SEND_LIMIT_PER_USER": "6/minute",
    "WRITE_LIMIT_PER_USER": "4/minute",
    "SEARCH_LIMIT_PER_USER": "4/minute",
    "SOCKET_EVENT_LIMIT": "10/minute",
}


@pytest.fixture(scope="module")
def strict(app_env: dict[str, str], migrated_db: str) -> Iterator[ApiProcess]:
    """An API process with low limits (same database and Redis as the suite's API)."""
    with ApiProcess.serving({**app_env, **STRICT}) as process:
        yield process


@pytest.fixture
async def client(strict: ApiProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with strict.client() as c:
        yield c


async def test_parallel_signins_cannot_outrun_the_account_limit(http: httpx.AsyncClient) -> None:
    account = await signup(http)
    login, password = account["user"]["username"], account["password"]
    attempts = [signin(http, login, f"Wrong-password-{i}") for i in range(19)]
    attempts.insert(10, signin(http, login, password))  # the right password hidden in the batch
    responses = await asyncio.gather(*attempts)
    evaluated = [r for r in responses if r.status_code != 429]
    # The limit (5 per 15 minutes) counts each attempt before argon2 runs: at most 5 are evaluated.
    assert len(evaluated) <= 5, [r.status_code for r in responses]
    assert all(r.status_code in (200, 401, 429) for r in responses)


async def test_parallel_signins_cannot_outrun_the_ip_limit(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(*(signin(client, unique_name("spray"), "Spray-Password-1")
                                       for _ in range(30)))
    assert sum(r.status_code != 429 for r in responses) <= 12, [r.status_code for r in responses]


async def test_forwarded_for_is_not_trusted_by_default(client: httpx.AsyncClient) -> None:
    # Claiming another client address in each attempt does not reset the per-IP count.
    responses = [await client.post("/auth/signin", headers={"X-Forwarded-For": f"203.0.113.{i}"},
                                   json={"login": unique_name("spray"), "password": "Spray-Password-1"})
                 for i in range(14)]
    assert sum(r.status_code != 429 for r in responses) <= 12, [r.status_code for r in responses]
    assert_problem(responses[-1], 429, "rate_limited")


async def test_signups_are_limited_per_ip(client: httpx.AsyncClient) -> None:
    statuses = []
    for _ in range(5):
        name = unique_name()
        response = await client.post("/auth/signup", json={"username": name, "email": f"{name}@example.com",
                                                           "password": "Correct-Horse-Battery-9"})
        statuses.append(response.status_code)
    assert statuses[:3] == [201, 201, 201] and statuses[3:] == [429, 429], statuses
    assert int(response.headers["retry-after"]) > 0


async def test_writes_and_searches_are_limited_per_user(http: httpx.AsyncClient,
                                                        client: httpx.AsyncClient) -> None:
    me, *others = [await signup(http) for _ in range(6)]
    headers = auth_headers(me["access_token"])
    follows = [await client.put(f"/users/{o['user']['id']}/follow", headers=headers) for o in others]
    assert [r.status_code for r in follows] == [200] * 4 + [429], [r.text for r in follows]
    assert_problem(follows[-1], 429, "rate_limited")
    # Other writes share the allowance.
    assert_problem(await client.patch("/users/me", json={"quote": "x"}, headers=headers), 429)
    searches = [await client.get("/users", params={"q": "a"}, headers=headers) for _ in range(5)]
    assert [r.status_code for r in searches] == [200] * 4 + [429]
    assert_problem(await client.get("/search", params={"q": "a"}, headers=headers), 429)
    # Another user is not affected.
    other = auth_headers(others[0]["access_token"])
    assert (await client.get("/users", params={"q": "a"}, headers=other)).status_code == 200


async def test_message_sends_are_limited_over_rest_and_socket_together(
        http: httpx.AsyncClient, client: httpx.AsyncClient, strict: ApiProcess) -> None:
    alice, bob = await signup(http), await signup(http)
    conversation_id = (await open_direct(http, alice, bob))["id"]
    url = f"/conversations/{conversation_id}/messages"
    headers = auth_headers(alice["access_token"])
    for i in range(3):
        sent = await client.post(url, json={"client_msg_id": f"rest-{i}", "body": "hi"}, headers=headers)
        assert sent.status_code == 201, sent.text
    socket = await connect_socket(strict.base_url, alice["access_token"])
    try:
        acks: list[dict[str, Any]] = [await call(socket, "message:send", {
            "conversation_id": conversation_id, "client_msg_id": f"socket-{i}", "body": "hi"}) for i in range(4)]
    finally:
        await socket.disconnect()
    assert [a["ok"] for a in acks] == [True, True, True, False], acks
    assert acks[-1]["error"]["code"] == "rate_limited" and acks[-1]["error"]["retry_after"] > 0
    assert_problem(await client.post(url, json={"client_msg_id": "rest-x", "body": "hi"}, headers=headers), 429)


async def test_a_flooding_socket_is_refused_then_disconnected(http: httpx.AsyncClient, strict: ApiProcess) -> None:
    account = await signup(http)
    socket = await connect_socket(strict.base_url, account["access_token"])
    disconnected = asyncio.Event()
    socket.on("disconnect", lambda *_: disconnected.set())
    try:
        acks = []
        for _ in range(10):  # within the limit: handled (an unknown event is still counted)
            acks.append(await call(socket, "no:such-event", {}))
        assert {a["error"]["code"] for a in acks} == {"unknown_event"}
        refused = await call(socket, "typing:start", {"conversation_id": "x"})
        assert refused["error"]["code"] == "rate_limited" and refused["error"]["retry_after"] > 0
        for _ in range(15):  # keeps flooding: a second window's worth of refusals ends the socket
            if disconnected.is_set():
                break
            await socket.emit("typing:start", {})
        await asyncio.wait_for(disconnected.wait(), 5)
    finally:
        if socket.connected:
            await socket.disconnect()
