"""FCM over its HTTP v1 protocol: an OAuth2 bearer from a service account (google-auth), then
`POST {FCM_ENDPOINT}/v1/projects/{FCM_PROJECT_ID}/messages:send`.

The service account file's `token_uri` says where the OAuth token comes from (Google's, or a
local fake in tests). The token is refreshed in a thread (google-auth is synchronous) once per
hour, under a lock so concurrent pushes wait for one refresh.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import msgspec
from google.auth.transport.requests import Request
from google.oauth2 import service_account
from yarl import URL

from src.modules.notifications.push.content import PushContent, fcm_message
from src.modules.notifications.push.outcome import SENT, Outcome, from_status

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
CHECK_EVERY_S = 30.0


def _is_unregistered(status: int, body: Any) -> bool:
    """FCM's way of saying the token is gone: 404, or an `UNREGISTERED` error code."""
    if status == 404:
        return True
    try:
        details = body["error"].get("details", [])
        return any(d.get("errorCode") == "UNREGISTERED" for d in details)
    except (TypeError, KeyError, AttributeError):
        return False


class FcmClient:
    """Sends one message per call on a shared session."""

    def __init__(self, project_id: str, credentials_file: str, endpoint: str) -> None:
        self._url = URL(f"{endpoint.rstrip('/')}/v1/projects/{project_id}/messages:send")  # parsed once
        self._credentials = service_account.Credentials.from_service_account_file(credentials_file, scopes=[SCOPE])
        self._lock = asyncio.Lock()
        self._headers: tuple[str, dict[str, str]] = ("", {})  # (bearer, headers): built once per bearer
        self._check_after = 0.0

    async def _bearer(self) -> str:
        # `valid` compares datetimes on every call: asked at most every CHECK_EVERY_S seconds (it
        # turns false minutes before the expiry), or at once when a 401 dropped the token.
        if self._credentials.token is None or time.monotonic() >= self._check_after:
            if not self._credentials.valid:
                async with self._lock:
                    if not self._credentials.valid:
                        await asyncio.to_thread(self._credentials.refresh, Request())
            self._check_after = time.monotonic() + CHECK_EVERY_S
        return str(self._credentials.token)

    async def send(self, session: aiohttp.ClientSession, token: str, content: PushContent) -> Outcome:
        bearer = await self._bearer()
        if self._headers[0] != bearer:
            self._headers = (bearer, {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"})
        headers = self._headers[1]
        payload = msgspec.json.encode(fcm_message(token, content))
        async with session.post(self._url, data=payload, headers=headers) as response:
            if response.status == 200:
                await response.read()
                return SENT
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            if response.status == 401:  # our bearer expired early: refresh, then try again
                self._credentials.token = None
                return Outcome("retry", 0.0, http_status=401)
            return from_status(response.status, response.headers.get("Retry-After"),
                               gone=_is_unregistered(response.status, body))
