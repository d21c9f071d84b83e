"""Sessions end at once: sign-out, sign-out-all, session revocation, password change — REST and sockets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
import socketio

from tests.e2e.harness import ApiProcess, EventRecorder, auth_headers, connect_socket, signup
from tests.e2e.test_auth import assert_problem, signin


async def me_status(http: httpx.AsyncClient, token: str) -> int:
    return (await http.get("/users/me", headers=auth_headers(token))).status_code


async def test_signout_refuses_the_access_token_at_once(http: httpx.AsyncClient) -> None:
    account = await signup(http)
    other = (await signin(http, account["user"]["username"], account["password"])).json()
    token = account["access_token"]
    assert await me_status(http, token) == 200  # the session is now cached as active

    response = await http.post("/auth/signout", headers=auth_headers(token))
    assert response.status_code == 204, response.text
    assert_problem(await http.get("/users/me", headers=auth_headers(token)), 401, "invalid_token")
    assert_problem(await http.post("/auth/refresh", json={"refresh_token": account["refresh_token"]}),
                   401, "invalid_token")
    assert_problem(await http.post("/auth/signout", headers=auth_headers(token)), 401)
    assert await me_status(http, other["access_token"]) == 200


async def test_signout_reaches_the_session_memory_of_another_api_process(
        http: httpx.AsyncClient, api_factory: Callable[..., ApiProcess]) -> None:
    # The other process remembers verdicts for a minute: only the revocation announcement it hears
    # through Redis can end the session there before that.
    other_api = api_factory(SESSION_CACHE_SECONDS="60", RUN_OUTBOX_RELAY="false")
    account = await signup(http)
    token = account["access_token"]
    async with httpx.AsyncClient(base_url=other_api.base_url + "/api/v1", timeout=15) as other:
        for _ in range(3):
            assert await me_status(other, token) == 200
        assert (await http.post("/auth/signout", headers=auth_headers(token))).status_code == 204
        for _ in range(100):  # polls a positive signal: the announcement crosses Redis pub/sub
            if await me_status(other, token) == 401:
                break
            await asyncio.sleep(0.05)
        assert_problem(await other.get("/users/me", headers=auth_headers(token)), 401, "invalid_token")


async def test_signout_all_ends_every_session(http: httpx.AsyncClient) -> None:
    account = await signup(http)
    second = (await signin(http, account["user"]["username"], account["password"])).json()
    bystander = await signup(http)
    assert await me_status(http, account["access_token"]) == 200
    assert await me_status(http, second["access_token"]) == 200

    response = await http.post("/auth/signout-all", headers=auth_headers(second["access_token"]))
    assert response.status_code == 204, response.text
    for token in (account["access_token"], second["access_token"]):
        assert await me_status(http, token) == 401
    for refresh in (account["refresh_token"], second["refresh_token"]):
        assert (await http.post("/auth/refresh", json={"refresh_token": refresh})).status_code == 401
    assert await me_status(http, bystander["access_token"]) == 200
    # Signing in again works.
    assert (await signin(http, account["user"]["username"], account["password"])).status_code == 200


async def test_revoking_one_session_by_id(http: httpx.AsyncClient) -> None:
    account = await signup(http)
    phone = (await signin(http, account["user"]["username"], account["password"], device_name="phone")).json()
    headers = auth_headers(account["access_token"])
    sessions = (await http.get("/auth/sessions", headers=headers)).json()["items"]
    by_device = {s["device_name"]: s for s in sessions}
    assert set(by_device) == {None, "phone"}
    assert by_device[None]["current"] and not by_device["phone"]["current"]

    response = await http.delete(f"/auth/sessions/{by_device['phone']['id']}", headers=headers)
    assert response.status_code == 204, response.text
    assert await me_status(http, phone["access_token"]) == 401
    assert await me_status(http, account["access_token"]) == 200
    assert [s["device_name"] for s in (await http.get("/auth/sessions", headers=headers)).json()["items"]] == [None]
    # Already revoked, or never existed: 404.
    assert_problem(await http.delete(f"/auth/sessions/{by_device['phone']['id']}", headers=headers),
                   404, "session_not_found")
    assert_problem(await http.delete(f"/auth/sessions/{uuid.uuid4()}", headers=headers), 404)


async def test_another_users_session_is_not_found(http: httpx.AsyncClient) -> None:
    alice, mallory = await signup(http), await signup(http)
    alice_sessions = (await http.get("/auth/sessions", headers=auth_headers(alice["access_token"]))).json()["items"]
    response = await http.delete(f"/auth/sessions/{alice_sessions[0]['id']}",
                                 headers=auth_headers(mallory["access_token"]))
    assert_problem(response, 404, "session_not_found")
    assert await me_status(http, alice["access_token"]) == 200
    assert await me_status(http, mallory["access_token"]) == 200


@pytest.mark.parametrize("header", ["", "Bearer", "Token abc", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt"])
async def test_missing_or_malformed_authorization_is_a_401(http: httpx.AsyncClient, header: str) -> None:
    headers = {"Authorization": header} if header else {}
    assert_problem(await http.get("/users/me", headers=headers), 401)


async def test_password_change_keeps_this_session_and_ends_the_others(http: httpx.AsyncClient) -> None:
    account = await signup(http)
    username, old_password = account["user"]["username"], account["password"]
    other = (await signin(http, username, old_password)).json()
    headers = auth_headers(account["access_token"])
    new_password = "Brand-New-Passphrase-42"

    wrong = await http.put("/auth/password", headers=headers,
                           json={"current_password": "Not-It-At-All-1", "new_password": new_password})
    assert_problem(wrong, 401, "invalid_credentials")
    weak = await http.put("/auth/password", headers=headers,
                          json={"current_password": old_password, "new_password": "password1"})
    assert_problem(weak, 400, "password_too_common", "new_password")
    assert await me_status(http, other["access_token"]) == 200  # nothing changed yet

    done = await http.put("/auth/password", headers=headers,
                          json={"current_password": old_password, "new_password": new_password})
    assert done.status_code == 204, done.text
    assert await me_status(http, account["access_token"]) == 200
    assert await me_status(http, other["access_token"]) == 401
    assert (await http.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})).status_code == 401
    assert (await http.post("/auth/refresh", json={"refresh_token": account["refresh_token"]})).status_code == 200
    assert_problem(await signin(http, username, old_password), 401, "invalid_credentials")
    assert (await signin(http, username, new_password)).status_code == 200


# -- sockets ---------------------------------------------------------------------------------


async def _refused_reason(api: ApiProcess, auth: Any) -> Any:
    """Connect with `auth`; the `connect_error` payload (the test fails if it connects)."""
    client = socketio.AsyncClient(reconnection=False)
    reasons: list[Any] = []
    client.on("connect_error", lambda data=None: reasons.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(api.base_url, transports=["websocket"], auth=auth, wait_timeout=10)
    await client.disconnect()
    assert reasons, "no connect_error received"
    return reasons[0]


def _unauthorized(reason: Any) -> bool:
    message = reason.get("message") if isinstance(reason, dict) else reason
    return message == "unauthorized"


async def test_socket_of_a_revoked_session_is_told_and_disconnected(http: httpx.AsyncClient,
                                                                    api: ApiProcess) -> None:
    account = await signup(http)
    other = (await signin(http, account["user"]["username"], account["password"])).json()
    recorder, bystander_recorder = EventRecorder(), EventRecorder()
    disconnected = asyncio.Event()
    client = await connect_socket(api.base_url, account["access_token"], recorder=recorder)
    client.on("disconnect", lambda *_: disconnected.set())
    bystander = await connect_socket(api.base_url, other["access_token"], recorder=bystander_recorder)
    try:
        assert client.connected and bystander.connected
        response = await http.post("/auth/signout", headers=auth_headers(account["access_token"]))
        assert response.status_code == 204
        revoked = await recorder.wait_for("session:revoked")
        assert revoked["session_id"] == _session_id(account)
        await asyncio.wait_for(disconnected.wait(), 5)
        assert not client.connected
        # The user's other session keeps its socket.
        await asyncio.sleep(0.3)
        assert bystander.connected
        assert "session:revoked" not in bystander_recorder.events
    finally:
        await client.disconnect()
        await bystander.disconnect()

    assert _unauthorized(await _refused_reason(api, {"token": account["access_token"]}))


def _session_id(account: dict[str, Any]) -> str:
    return str(jwt.decode(account["access_token"], options={"verify_signature": False})["sid"])


async def test_password_change_disconnects_the_other_sessions_sockets(http: httpx.AsyncClient,
                                                                      api: ApiProcess) -> None:
    account = await signup(http)
    other = (await signin(http, account["user"]["username"], account["password"])).json()
    mine, theirs = EventRecorder(), EventRecorder()
    current = await connect_socket(api.base_url, account["access_token"], recorder=mine)
    stale = await connect_socket(api.base_url, other["access_token"], recorder=theirs)
    try:
        done = await http.put("/auth/password", headers=auth_headers(account["access_token"]), json={
            "current_password": account["password"], "new_password": "Another-Fine-Passphrase-7"})
        assert done.status_code == 204
        await theirs.wait_for("session:revoked")
        for _ in range(100):
            if not stale.connected:
                break
            await asyncio.sleep(0.05)
        assert not stale.connected
        assert current.connected and "session:revoked" not in mine.events
    finally:
        await current.disconnect()
        await stale.disconnect()


async def test_socket_connect_needs_a_valid_access_token(http: httpx.AsyncClient, api: ApiProcess) -> None:
    account = await signup(http)
    for auth in (None, {}, {"token": ""}, {"token": "garbage"}, {"token": 42},
                 {"token": account["refresh_token"]}):
        assert _unauthorized(await _refused_reason(api, auth)), auth
    # The same account connects with its access token.
    client = await connect_socket(api.base_url, account["access_token"])
    try:
        assert client.connected
    finally:
        await client.disconnect()


async def test_a_refresh_token_is_not_an_access_token(http: httpx.AsyncClient) -> None:
    account = await signup(http)
    assert_problem(await http.get("/users/me", headers=auth_headers(account["refresh_token"])),
                   401, "invalid_token")
    # And an access token cannot refresh.
    assert_problem(await http.post("/auth/refresh", json={"refresh_token": account["access_token"][:200]}), 401)
