"""Forgot / reset password: the mail is sent by the real Dramatiq worker to a real SMTP server."""

from __future__ import annotations

import re

import httpx

from tests.e2e.harness import Mail, SmtpSink, WorkerProcess, auth_headers, signup, unique_name
from tests.e2e.test_auth import assert_problem, signin

NEW_PASSWORD = "Fresh-Start-Passphrase-8"


def _token(mail: Mail) -> str:
    found = re.search(r"Reset token: (\S+)", mail.text)
    assert found, mail.text
    return found.group(1)


async def test_forgot_password_is_always_accepted(http: httpx.AsyncClient) -> None:
    for email in (f"{unique_name('nobody')}@example.com", "not-even-an-email"):
        response = await http.post("/auth/forgot-password", json={"email": email})
        assert response.status_code == 202, response.text
    assert_problem(await http.post("/auth/forgot-password", json={}), 400, field="email")


async def test_reset_by_mail_works_once_and_ends_every_session(http: httpx.AsyncClient, smtp: SmtpSink,
                                                              worker: WorkerProcess) -> None:
    account = await signup(http)
    user = account["user"]
    other = (await signin(http, user["username"], account["password"])).json()
    stranger = f"{unique_name('nobody')}@example.com"

    assert (await http.post("/auth/forgot-password", json={"email": stranger})).status_code == 202
    accepted = await http.post("/auth/forgot-password", json={"email": user["email"].upper()})
    assert accepted.status_code == 202, accepted.text

    mail = await smtp.wait_for(lambda m: user["email"] in m.recipients, timeout=30)
    assert worker.running  # the API only enqueues; the worker process sent it
    assert "reset" in mail.subject.lower()
    token = _token(mail)
    assert f"/reset-password?token={token}" in mail.text
    assert user["username"] in mail.text

    # A weak password is refused without spending the token.
    weak = await http.post("/auth/reset-password", json={"token": token, "password": "password1"})
    assert_problem(weak, 400, "password_too_common", "password")
    assert (await http.get("/users/me", headers=auth_headers(account["access_token"]))).status_code == 200

    done = await http.post("/auth/reset-password", json={"token": token, "password": NEW_PASSWORD})
    assert done.status_code == 204, done.text
    for session in (account, other):
        assert_problem(await http.get("/users/me", headers=auth_headers(session["access_token"])), 401)
        assert (await http.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})).status_code == 401
    assert_problem(await signin(http, user["username"], account["password"]), 401, "invalid_credentials")
    assert (await signin(http, user["username"], NEW_PASSWORD)).status_code == 200

    again = await http.post("/auth/reset-password", json={"token": token, "password": "Yet-Another-Pass-99"})
    assert_problem(again, 400, "invalid_token", "token")
    assert (await signin(http, user["username"], NEW_PASSWORD)).status_code == 200

    # Nothing was mailed for the address without an account (asked before the account's mail,
    # which has arrived: the stranger's request enqueued nothing at all).
    assert not [m for m in smtp.messages if stranger in m.recipients]


async def test_unknown_reset_token_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("/auth/reset-password", json={"token": "made-up-token", "password": NEW_PASSWORD})
    assert_problem(response, 400, "invalid_token", "token")
