"""Web Push with VAPID (pywebpush): the payload is encrypted for the subscription (aes128gcm)
and signed with our VAPID key; the push service answers 404/410 for a subscription that is gone."""

from __future__ import annotations

import json

import aiohttp
from py_vapid import Vapid
from pywebpush import WebPushException, webpush_async

from src.modules.notifications.push.content import PushContent, webpush_data
from src.modules.notifications.push.outcome import SENT, Outcome, from_status

TTL_SECONDS = 24 * 3600
TIMEOUT = aiohttp.ClientTimeout(total=10)


class WebPushClient:
    """Sends one message per call on a shared session."""

    def __init__(self, private_key: str, subject: str) -> None:
        self._vapid = Vapid.from_string(private_key=private_key)
        self._subject = subject

    async def send(self, session: aiohttp.ClientSession, token: str, content: PushContent) -> Outcome:
        subscription = json.loads(token)
        try:
            await webpush_async(subscription, json.dumps(webpush_data(content)), vapid_private_key=self._vapid,
                                vapid_claims={"sub": self._subject}, ttl=TTL_SECONDS, aiohttp_session=session,
                                headers={"Urgency": "normal" if content.silent else "high"},
                                timeout=TIMEOUT)  # type: ignore[arg-type]
        except WebPushException as exc:
            status = exc.response.status if exc.response is not None else 0  # type: ignore[union-attr]
            header = exc.response.headers.get("Retry-After") if exc.response is not None else None  # type: ignore[union-attr]
            return from_status(status or 503, header, gone=status in (404, 410))
        return SENT
