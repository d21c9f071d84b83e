"""Push jobs: the alert of a notification, the silent clear of read ones, and retries.

An alert is pushed once per version of a notification (a collapse bumps the version, and the
device replaces the alert: same tag), only while unread. A message's alert re-checks the read
position first: a read on another device between the notification and the push stops it.
A 429 / 5xx is retried for that device alone after the service's `Retry-After` (else 2, 4, 8…
seconds), up to PUSH_MAX_ATTEMPTS; a token reported gone is deleted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

import structlog

from src.common.queries.messaging import GetMessageBodies, GetReadStates
from src.common.queries.users import GetProfiles
from src.modules.notifications.jobs import RETRY
from src.modules.notifications.push.claim import claim_pushes
from src.modules.notifications.push.content import PushContent, clear_content
from src.modules.notifications.views import sentence

if TYPE_CHECKING:
    from src.modules.notifications.services import Services

log = structlog.get_logger("chatty.push")
NO_PREVIEW = "New message"
NAME_TTL, NAME_CACHE_SIZE = 60.0, 10_000


def backoff_seconds(attempt: int) -> float:
    """Delay before attempt `attempt + 1` when the service gave none: 2, 4, 8 … up to 5 minutes."""
    return float(min(2 ** attempt, 300))


class Pusher:
    """Builds push contents and sends them to a user's devices."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self._ctx = services.ctx
        self._name_cache: dict[uuid.UUID, tuple[float, str | None]] = {}

    async def push_alert(self, note_id: uuid.UUID, version: int) -> None:
        """Push `version` of a notification to its user's devices, if still unread and due."""
        await self.push_alerts([(note_id, version)])

    async def push_alerts(self, items: list[tuple[uuid.UUID, int]]) -> None:
        """`push_alert` for many (id, version) pairs: one claim statement, one read check, one
        lookup of names and of message texts, then every device's push side by side."""
        claimed = await claim_pushes(self._ctx.db, items)
        if not claimed:
            return
        read = await self._read_meanwhile([c.row for c in claimed if c.row.kind == "message"])
        # Read on another device meanwhile: no alert; the read cleared nothing pushed yet.
        for c in claimed:
            if c.row.id in read and await self._s.store.mark_read(c.row.user_id, ids=[c.row.id]):
                await self._s.clearing.announce(c.row.user_id, [(c.row.id, False)])
        due = [c for c in claimed if c.devices and c.row.id not in read]
        if not due:
            return
        contents = await self.alert_contents([(c.row, c.show_previews) for c in due])
        await asyncio.gather(*(self._send(d.device_id, d.platform, d.token, content, [str(c.row.id)], clear=False,
                                          attempt=1) for c, content in zip(due, contents, strict=True)
                               for d in c.devices))

    async def push_clear(self, user_id: uuid.UUID, notification_ids: list[str]) -> None:
        """The silent clear to every device of the user."""
        content = clear_content(notification_ids)
        devices = await self._s.devices.of_user(user_id)
        await asyncio.gather(*(self._send(d.id, d.platform, d.token, content, notification_ids, clear=True,
                                          attempt=1) for d in devices))

    async def retry(self, device_id: uuid.UUID, notification_ids: list[str], *, clear: bool, attempt: int) -> None:
        """Send again to one device (a clear always; an alert only while unread)."""
        device = await self._s.devices.by_id(device_id)
        if device is None:
            return
        if clear:
            content = clear_content(notification_ids)
        else:
            row = await self._s.store.by_id(uuid.UUID(notification_ids[0]))
            if row is None or row.read_at is not None:
                return
            content = await self.alert_content(row, (await self._s.prefs.get(row.user_id)).show_previews)
        await self._send(device.id, device.platform, device.token, content, notification_ids, clear=clear,
                         attempt=attempt)

    async def _read_meanwhile(self, rows: list[Any]) -> set[uuid.UUID]:
        """Ids of these message notifications whose user has read up to their seq since."""
        if not rows:
            return set()
        states = await self._ctx.queries.ask(GetReadStates(pairs=[(r.subject_id, r.user_id) for r in rows]))
        return {r.id for r in rows if states.get((r.subject_id, r.user_id), (0, False))[0] >= (r.subject_seq or 0)}

    async def alert_content(self, row: Any, show_previews: bool) -> PushContent:
        """Title and body of a notification's alert; no message text when previews are off."""
        return (await self.alert_contents([(row, show_previews)]))[0]

    async def alert_contents(self, rows: list[tuple[Any, bool]]) -> list[PushContent]:
        """`alert_content` of many (row, show_previews): one names lookup, one message-text lookup."""
        names = await self._names(list({a: None for row, _ in rows for a in row.actor_ids[:2]}))
        wanted = [uuid.UUID(row.data["message_id"]) for row, show in rows
                  if row.kind == "message" and show and "message_id" in row.data]
        bodies = await self._ctx.queries.ask(GetMessageBodies(message_ids=wanted)) if wanted else {}
        return [self._content(row, show, [n for a in row.actor_ids[:2] if (n := names.get(a)) is not None], bodies)
                for row, show in rows]

    @staticmethod
    def _content(row: Any, show_previews: bool, names: list[str], bodies: dict[uuid.UUID, str | None]) -> PushContent:
        text = sentence(row.kind, names, row.actor_count, row.event_count)
        data = {"type": "notification", "notification_id": str(row.id), "kind": row.kind,
                **{k: str(v) for k, v in row.data.items() if v is not None}}
        if row.kind != "message":
            return PushContent(data=data, title="Chatty", body=text, tag=str(row.id))
        body = text if row.event_count > 1 else NO_PREVIEW
        if show_previews and "message_id" in row.data:
            body = bodies.get(uuid.UUID(row.data["message_id"])) or body
        return PushContent(data=data, title=names[0] if names else "Chatty", body=body, tag=str(row.id))

    async def _names(self, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Display names of those who have one, cached for a minute (a push title may lag a rename)."""
        now = time.monotonic()
        missing = [u for u in user_ids if u not in self._name_cache or self._name_cache[u][0] < now]
        if missing:
            profiles = await self._ctx.queries.ask(GetProfiles(user_ids=missing))
            if len(self._name_cache) > NAME_CACHE_SIZE:
                self._name_cache.clear()
            for u in missing:
                self._name_cache[u] = (now + NAME_TTL, profiles[u].display_name if u in profiles else None)
        return {u: name for u in user_ids if (name := self._name_cache[u][1]) is not None}

    async def _send(self, device_id: uuid.UUID, platform: str, token: str, content: PushContent,
                    notification_ids: list[str], *, clear: bool, attempt: int) -> None:
        outcome = await self._s.sender.send(platform, token, content)
        if outcome.status == "gone":
            await self._s.devices.forget(device_id)
            log.info("push.token_gone", device_id=str(device_id), platform=platform, status=outcome.http_status)
        elif outcome.status == "retry":
            if attempt >= self._ctx.settings.push_max_attempts:
                log.warning("push.gave_up", device_id=str(device_id), attempts=attempt, status=outcome.http_status)
                return
            delay = outcome.retry_after if outcome.retry_after is not None else backoff_seconds(attempt)
            self._ctx.tasks.enqueue_in(RETRY, int(delay * 1000), device_id=str(device_id),
                                       notification_ids=notification_ids, clear=clear, attempt=attempt + 1)
        elif outcome.status == "failed":
            log.warning("push.failed", device_id=str(device_id), platform=platform, status=outcome.http_status)
