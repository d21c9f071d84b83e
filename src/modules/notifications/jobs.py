"""Background work of notifications (Dramatiq). Actors take ids, never tokens or text, and
delegate to the services `build()` bound to the process's context.

Queues: `push` (alerts, clears, retries, due message checks), `email` (digests), `maintenance`
(hourly pruning).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from src.infra.context import AppContext
from src.infra.tasks import TaskSpec
from src.modules.notifications.housekeeping import PRUNE

if TYPE_CHECKING:
    from src.modules.notifications.services import Services

_bound: dict[int, Services] = {}


def bind(ctx: AppContext, services: Services) -> None:
    """Make `services` the ones this process's tasks use (called by `build`)."""
    _bound[id(ctx)] = services


def _of(ctx: AppContext) -> Services:
    return _bound[id(ctx)]


async def _push(ctx: AppContext, *, notification_id: str, version: int) -> None:
    await _of(ctx).pusher.push_alert(uuid.UUID(notification_id), version)


async def _clear(ctx: AppContext, *, user_id: str, notification_ids: list[str]) -> None:
    await _of(ctx).pusher.push_clear(uuid.UUID(user_id), notification_ids)


async def _retry(ctx: AppContext, *, device_id: str, notification_ids: list[str], clear: bool, attempt: int) -> None:
    await _of(ctx).pusher.retry(uuid.UUID(device_id), notification_ids, clear=clear, attempt=attempt)


async def _message_due(ctx: AppContext, *, event_id: str, message_id: str, conversation_id: str, sender_id: str,
                       seq: int, recipient_ids: list[str]) -> None:
    await _of(ctx).messages.due(uuid.UUID(event_id), uuid.UUID(message_id), uuid.UUID(conversation_id),
                                uuid.UUID(sender_id), seq, [uuid.UUID(r) for r in recipient_ids])


async def _digest(ctx: AppContext, *, user_id: str) -> None:
    await _of(ctx).digest.send(uuid.UUID(user_id))


# Pushes are retried by hand (`retry`, honouring Retry-After), so Dramatiq retries only crashes.
PUSH = TaskSpec(name="notifications.push", queue="push", fn=_push, max_retries=3, time_limit_ms=30_000)
CLEAR = TaskSpec(name="notifications.clear", queue="push", fn=_clear, max_retries=3, time_limit_ms=30_000)
RETRY = TaskSpec(name="notifications.retry_push", queue="push", fn=_retry, max_retries=3, time_limit_ms=30_000)
MESSAGE_DUE = TaskSpec(name="notifications.message_due", queue="push", fn=_message_due, max_retries=5)
DIGEST = TaskSpec(name="notifications.email_digest", queue="email", fn=_digest, max_retries=8)
TASKS = [PUSH, CLEAR, RETRY, MESSAGE_DUE, DIGEST, PRUNE]
