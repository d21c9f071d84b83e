"""Sign-up, sign-in, refresh and sign-in rate limits, over the real API process."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.harness import ApiProcess, auth_headers, signup, unique_name

PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str | None = None,
                   field: str | None = None) -> dict[str, Any]:
    """The response is a problem+json with this status (and code / field when given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"]
    if code is not None:
        assert body["code"] == code, body
    if field is not None:
        assert body.get("field") == field, body
    return body


async def signin(http: httpx.AsyncClient, login: str, password: str, **extra: Any) -> httpx.Response:
    return await http.post("/auth/signin", json={"login": login, "password": password, **extra})


async def test_signup_returns_tokens_and_the_account(http: httpx.AsyncClient) -> None:
    username = unique_name("Ann")
    response = await http.post("/auth/signup", json={
        "username": username, "email": f"{username}@Example.COM", "password": "Correct-Horse-Battery-9",
        "display_name": "Ann Example"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["user"]["username"] == username
    assert body["user"]["email"] == f"{username}@example.com"  # the domain is normalized
    assert body["user"]["display_name"] == "Ann Example"
    assert body["access_token"] and body["refresh_token"] and body["expires_in"] > 0
    assert body["token_type"] == "Bearer"

    me = await http.get("/users/me", headers=auth_headers(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == body["user"]["id"]
    assert me.json()["display_name"] == "Ann Example"


async def test_duplicates_are_refused_case_insensitively(http: httpx.AsyncClient) -> None:
    first = await signup(http, unique_name("Dup"))
    username, email = first["user"]["username"], first["user"]["email"]

    same_name = await http.post("/auth/signup", json={
        "username": username.upper(), "email": f"other-{unique_name()}@example.com",
        "password": "Correct-Horse-Battery-9"})
    assert_problem(same_name, 409, "username_taken", "username")

    same_email = await http.post("/auth/signup", json={
        "username": unique_name(), "email": email.upper(), "password": "Correct-Horse-Battery-9"})
    assert_problem(same_email, 409, "email_taken", "email")


def _valid() -> dict[str, str]:
    name = unique_name()
    return {"username": name, "email": f"{name}@example.com", "password": "Correct-Horse-Battery-9"}


@pytest.mark.parametrize(("change", "field", "code"), [
    ({"username": "ab"}, "username", None),
    ({"username": "x" * 33}, "username", None),
    ({"username": "has space"}, "username", None),
    ({"username": "ünïcode"}, "username", None),
    ({"email": "not-an-email"}, "email", "invalid_email"),
    ({"email": "a@b"}, "email", "invalid_email"),
    ({"email": "two@@example.com"}, "email", "invalid_email"),
    ({"password": "Sh0rt!"}, "password", "password_too_short"),
    ({"password": "Long-enough-9" * 10}, "password", "password_too_long"),
    ({"password": "password1"}, "password", "password_too_common"),
    ({"password": "iloveyou"}, "password", "password_too_common"),
    ({"display_name": ""}, "display_name", None),
    ({"password": None}, "password", None),
    ({"surprise": "field"}, "surprise", None),
], ids=lambda v: str(v)[:30])
async def test_invalid_signup_is_a_400_naming_the_field(http: httpx.AsyncClient, change: dict[str, Any],
                                                         field: str, code: str | None) -> None:
    body = {**_valid(), **change}
    body = {k: v for k, v in body.items() if v is not None}
    assert_problem(await http.post("/auth/signup", json=body), 400, code, field)


async def test_password_equal_to_the_username_is_refused(http: httpx.AsyncClient) -> None:
    body = _valid()
    body["password"] = body["username"].upper()
    assert_problem(await http.post("/auth/signup", json=body), 400, "password_too_common", "password")


async def test_unicode_password_is_kept_exactly(http: httpx.AsyncClient) -> None:
    password = unicodedata.normalize("NFC", "Pässwörd-ñandú-🔑")
    account = await signup(http, password=password)
    username = account["user"]["username"]

    assert (await signin(http, username, password)).status_code == 200
    for variant in (unicodedata.normalize("NFD", password), password[:-1], password.encode().decode("latin-1")):
        assert variant != password
        assert_problem(await signin(http, username, variant), 401, "invalid_credentials")


async def test_signin_with_username_or_email(http: httpx.AsyncClient) -> None:
    account = await signup(http)
    user, password = account["user"], account["password"]
    for login in (user["username"], user["username"].upper(), user["email"], user["email"].upper()):
        response = await signin(http, login, password, device_name="Pixel 9")
        assert response.status_code == 200, (login, response.text)
        tokens = response.json()
        assert tokens["user"]["id"] == user["id"]
        me = await http.get("/users/me", headers=auth_headers(tokens["access_token"]))
        assert me.status_code == 200 and me.json()["id"] == user["id"]

    sessions = await http.get("/auth/sessions", headers=auth_headers(tokens["access_token"]))
    assert sessions.status_code == 200
    listed = sessions.json()["items"]
    assert len(listed) == 5  # the sign-up session and four sign-ins
    assert [s["current"] for s in listed].count(True) == 1
    assert {s["device_name"] for s in listed} == {"Pixel 9", None}


async def test_unknown_user_and_wrong_password_look_the_same(http: httpx.AsyncClient) -> None:
    account = await signup(http)
    wrong_password = await signin(http, account["user"]["username"], "Not-The-Password-1")
    unknown_user = await signin(http, unique_name("ghost"), account["password"])
    unknown_email = await signin(http, f"{unique_name('ghost')}@example.com", account["password"])
    bodies = [assert_problem(r, 401, "invalid_credentials") for r in (wrong_password, unknown_user, unknown_email)]
    assert bodies[0] == bodies[1] == bodies[2]


async def test_refresh_rotates_and_spends_the_old_token(http: httpx.AsyncClient) -> None:
    account = await signup(http)
    first = await http.post("/auth/refresh", json={"refresh_token": account["refresh_token"]})
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != account["refresh_token"]
    assert rotated["user"]["id"] == account["user"]["id"]
    me = await http.get("/users/me", headers=auth_headers(rotated["access_token"]))
    assert me.status_code == 200

    second = await http.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert second.status_code == 200, second.text
    assert second.json()["refresh_token"] not in (rotated["refresh_token"], account["refresh_token"])


async def test_refresh_reuse_revokes_the_whole_session(http: httpx.AsyncClient) -> None:
    account = await signup(http)
    other = (await signin(http, account["user"]["username"], account["password"])).json()
    rotated = (await http.post("/auth/refresh", json={"refresh_token": account["refresh_token"]})).json()
    latest_access = rotated["access_token"]
    assert (await http.get("/users/me", headers=auth_headers(latest_access))).status_code == 200

    # The spent token shows up again: someone copied it. The session ends for everyone holding it.
    reuse = await http.post("/auth/refresh", json={"refresh_token": account["refresh_token"]})
    assert_problem(reuse, 401, "invalid_token")
    assert_problem(await http.get("/users/me", headers=auth_headers(latest_access)), 401, "invalid_token")
    assert_problem(await http.get("/users/me", headers=auth_headers(account["access_token"])), 401)
    assert_problem(await http.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]}),
                   401, "invalid_token")
    # Only that session: the user's other session goes on.
    assert (await http.get("/users/me", headers=auth_headers(other["access_token"]))).status_code == 200


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 201])
async def test_bad_refresh_tokens_are_refused(http: httpx.AsyncClient, token: str) -> None:
    response = await http.post("/auth/refresh", json={"refresh_token": token})
    assert response.status_code in (400, 401), response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


async def test_five_failed_signins_lock_the_account_for_a_while(http: httpx.AsyncClient) -> None:
    account = await signup(http)
    user, password = account["user"], account["password"]
    bystander = await signup(http)
    for attempt in range(5):
        # Alternating username and email: both name the same account.
        login = user["username"] if attempt % 2 else user["email"]
        assert_problem(await signin(http, login, f"Wrong-password-{attempt}"), 401, "invalid_credentials")

    for login in (user["username"], user["email"].upper()):
        refused = await signin(http, login, password)  # even the right password waits
        assert_problem(refused, 429, "rate_limited")
        retry_after = int(refused.headers["retry-after"])
        assert 0 < retry_after <= 15 * 60

    # Other accounts (from the same IP) are not affected.
    assert (await signin(http, bystander["user"]["username"], bystander["password"])).status_code == 200
    # Tokens already issued keep working.
    assert (await http.get("/users/me", headers=auth_headers(account["access_token"]))).status_code == 200


async def test_failed_signins_are_limited_per_ip(http: httpx.AsyncClient,
                                                 api_factory: Callable[..., ApiProcess]) -> None:
    account = await signup(http)
    strict = api_factory(SIGNIN_LIMIT_PER_IP="10/15minutes")
    async with httpx.AsyncClient(base_url=strict.base_url + "/api/v1", timeout=15) as client:
        for _ in range(10):  # ten different (unknown) accounts, one failure each
            assert_problem(await signin(client, unique_name("spray"), "Spray-Password-1"), 401)
        refused = await signin(client, account["user"]["username"], account["password"])
        assert_problem(refused, 429, "rate_limited")
        assert 0 < int(refused.headers["retry-after"]) <= 15 * 60
    # The suite's API has a high per-IP limit: the account itself is fine.
    assert (await signin(http, account["user"]["username"], account["password"])).status_code == 200
