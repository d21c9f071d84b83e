"""One push to one device, through the right service, on this worker's keep-alive session.

The aiohttp session (and its connection pool) is created on first use inside the worker's event
loop and kept for the process's life: connections to FCM and push services are reused.
A channel whose settings are missing (no FCM project / credentials, no VAPID key) is off: its
pushes fail quietly (logged once per process).
"""

from __future__ import annotations

import aiohttp
import structlog

from src.infra.config import Settings
from src.modules.notifications.push.content import PushContent
from src.modules.notifications.push.fcm import FcmClient
from src.modules.notifications.push.outcome import Outcome
from src.modules.notifications.push.webpush import WebPushClient

log = structlog.get_logger("chatty.push")
CONNECTIONS = 100  # per worker process, all hosts together


class PushSender:
    """`send(platform, token, content)` → Outcome; never logs the token."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._fcm: FcmClient | None = None
        self._webpush: WebPushClient | None = None
        self._warned: set[str] = set()

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTIONS, keepalive_timeout=60),
                timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    def _client(self, platform: str) -> FcmClient | WebPushClient | None:
        s = self._settings
        if platform == "fcm" and self._fcm is None and s.fcm_project_id and s.fcm_credentials_file:
            self._fcm = FcmClient(s.fcm_project_id, s.fcm_credentials_file, s.fcm_endpoint)
        if platform == "webpush" and self._webpush is None and s.vapid_private_key:
            self._webpush = WebPushClient(s.vapid_private_key, s.vapid_subject)
        return self._fcm if platform == "fcm" else self._webpush

    async def send(self, platform: str, token: str, content: PushContent) -> Outcome:
        """Send one push; network errors are a retry."""
        client = self._client(platform)
        if client is None:
            if platform not in self._warned:
                self._warned.add(platform)
                log.warning("push.channel_not_configured", platform=platform)
            return Outcome("failed")
        try:
            return await client.send(self._session_now(), token, content)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("push.transport_error", platform=platform, error=type(exc).__name__)
            return Outcome("retry")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
