"""Dramatiq actors of calls: the durable timers (delayed messages) and the archive sweep."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from src.infra.context import AppContext
from src.infra.tasks import TaskSpec

if TYPE_CHECKING:
    from src.modules.calls.service import CallService


def _service(ctx: AppContext) -> CallService:
    # Imported here: the service enqueues the specs below, so it imports this module.
    from src.modules.calls.service import CallService

    return CallService(ctx)


async def ring_timeout(ctx: AppContext, call_id: str) -> None:
    """Whoever still rings in the call missed it."""
    await _service(ctx).ring_timeout(uuid.UUID(call_id))


async def grace_expired(ctx: AppContext, call_id: str, user_id: str, since: str) -> None:
    """A participant whose socket dropped at `since` did not come back in time."""
    await _service(ctx).grace_expired(uuid.UUID(call_id), uuid.UUID(user_id), datetime.fromisoformat(since))


async def archive_leftovers(ctx: AppContext) -> None:
    """Write to history the ended calls whose archive failed."""
    await _service(ctx).archive_leftovers()


_TIMER = {"queue": "calls", "max_retries": 10, "min_backoff_ms": 200, "max_backoff_ms": 10_000,
          "time_limit_ms": 30_000}
RING_TIMEOUT = TaskSpec(name="calls.ring_timeout", fn=ring_timeout, **_TIMER)  # type: ignore[arg-type]
GRACE_EXPIRED = TaskSpec(name="calls.grace_expired", fn=grace_expired, **_TIMER)  # type: ignore[arg-type]
ARCHIVE_LEFTOVERS = TaskSpec(name="calls.archive_leftovers", queue="maintenance", fn=archive_leftovers,
                             every_seconds=60)
TASKS = [RING_TIMEOUT, GRACE_EXPIRED, ARCHIVE_LEFTOVERS]
