"""Email: one mail per recipient per EMAIL_BATCH_WINDOW seconds, summarising what is still unread.

The first emailable notification of a window sets a Redis marker and schedules the digest at the
window's end; notifications read meanwhile are left out, and nothing unread means no mail.
Rows are marked `emailed_at` in the transaction that sends the mail: a failed send rolls back
and the retry mails them.
"""

from __future__ import annotations

import asyncio
import smtplib
import time
import uuid
from email.message import EmailMessage
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import func, update

from src.common.queries.users import GetEmailAddresses
from src.modules.notifications.jobs import DIGEST, DIGESTS
from src.modules.notifications.models import notifications

if TYPE_CHECKING:
    from src.modules.notifications.services import Services

log = structlog.get_logger("chatty.notifications")
MAX_LINES = 20
OPEN_MARGIN = 5.0  # seconds: a window seen open is asked about again this long before it closes
OPEN_WINDOWS_KEPT = 100_000  # users remembered per process (then forgotten at once)


def _key(user_id: uuid.UUID) -> str:
    return f"notifications:digest:{user_id}"


def _send(host: str, port: int, message: EmailMessage) -> None:
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.send_message(message)


class EmailDigest:
    """Schedules and sends the per-window digest."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self._ctx = services.ctx
        self._open_until: dict[uuid.UUID, float] = {}  # user → monotonic time their window surely stays open

    async def schedule_many(self, user_ids: list[uuid.UUID]) -> None:
        """Open a window for each of these users unless one is open: one Redis round trip, and one
        digest job for all the windows opened (they close together), enqueued off the event loop.

        A user whose window this process saw open is skipped until shortly before it closes (its
        digest deletes the marker at the window's end, the marker itself lives 60 s longer)."""
        now = time.monotonic()
        asked = [u for u in user_ids if self._open_until.get(u, 0.0) <= now]
        if not asked:
            return
        window = self._ctx.settings.email_batch_window
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            for user_id in asked:
                pipe.set(_key(user_id), "1", nx=True, ex=int(window) + 60)
                pipe.pttl(_key(user_id))
            replies = await pipe.execute()
        if len(self._open_until) > OPEN_WINDOWS_KEPT:
            self._open_until.clear()
        opened_now = [str(u) for u, opened in zip(asked, replies[::2], strict=True) if opened]
        if opened_now:
            await asyncio.to_thread(self._ctx.tasks.enqueue_in, DIGESTS, int(window * 1000), user_ids=opened_now)
        for user_id, ttl_ms in zip(asked, replies[1::2], strict=True):
            if ttl_ms > 0:
                self._open_until[user_id] = now + ttl_ms / 1000 - 60 - OPEN_MARGIN

    async def send_many(self, user_ids: list[uuid.UUID]) -> None:
        """Each user's digest; a user whose digest fails is retried alone (a DIGEST job of their own),
        so that the others are not mailed twice by a retry of the whole batch."""
        for user_id in user_ids:
            try:
                await self.send(user_id)
            except Exception as exc:
                log.warning("notifications.digest_failed", user_id=str(user_id), error=repr(exc))
                await asyncio.to_thread(self._ctx.tasks.enqueue_in, DIGEST, 1000, user_id=str(user_id))

    async def send(self, user_id: uuid.UUID) -> None:
        """Mail the user's unread, not yet mailed notifications (nothing when there are none)."""
        await self._ctx.redis.delete(_key(user_id))  # the next notification opens a new window
        address = (await self._ctx.queries.ask(GetEmailAddresses(user_ids=[user_id]))).get(user_id)
        if address is None:
            return
        async with self._ctx.db.session() as session, session.begin():
            rows = list((await session.execute(
                update(notifications).where(notifications.c.user_id == user_id, notifications.c.email,
                                            notifications.c.read_at.is_(None), notifications.c.emailed_at.is_(None))
                .values(emailed_at=func.now()).returning(*notifications.c))).all())
            if not rows:
                return
            rows.sort(key=lambda r: r.updated_at, reverse=True)
            views = await self._s.views(rows[:MAX_LINES])
            message = EmailMessage()
            message["From"] = self._ctx.settings.mail_from
            message["To"] = address
            message["Subject"] = f"You have {len(rows)} unread notification{'s' if len(rows) > 1 else ''} on Chatty"
            lines = "\n".join(f"- {v.text}" for v in views)
            more = f"\n… and {len(rows) - MAX_LINES} more" if len(rows) > MAX_LINES else ""
            message.set_content(f"While you were away:\n\n{lines}{more}\n\n"
                                f"Open Chatty: {self._ctx.settings.public_base_url}\n\n"
                                "Change which mails you get in your notification preferences.\n")
            message["X-Chatty-Notification-Ids"] = ",".join(str(r.id) for r in rows)
            await asyncio.to_thread(_send, self._ctx.settings.smtp_host, self._ctx.settings.smtp_port, message)
