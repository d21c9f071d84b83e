"""Background work of notifications (Dramatiq). Actors take ids, never tokens or text, and
delegate to the services `build()` bound to the process's context.

Queues: `push` (alerts, clears, retries, due message checks of old releases), `push_bulk` (alerts
enqueued without a delay, taken in batches by the worker's event loop: src/infra/bulk_queue.py), `email` (digests),
`maintenance` (hourly pruning). Due message windows: a worker loop (`DUE_MESSAGES`) in every
worker process serving `push`.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from src.infra.context import AppContext
from src.infra.loops import WorkerLoop
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


def push_items(items: list[tuple[uuid.UUID, int]]) -> list[str]:
    """(notification id, version) pairs as a push job's `items` ("id:version")."""
    return [f"{note_id}:{version}" for note_id, version in items]


async def _push(ctx: AppContext, **job: Any) -> None:
    # The worker runs `_push_batch` (TaskSpec.batch_fn); a job run on its own is a batch of one.
    await _push_batch(ctx, [job])


async def _push_batch(ctx: AppContext, jobs: list[dict[str, Any]]) -> None:
    # The worker's waiting push jobs together (TaskSpec.batch_fn): one claim, one send round.
    # A job's `items` are "id:version"; `notification_id` / `version`: one alert, as jobs
    # enqueued before batching carried it.
    wanted = [(uuid.UUID(i), int(v)) for job in jobs for i, _, v in
              (item.rpartition(":") for item in job.get("items") or [])]
    wanted += [(uuid.UUID(job["notification_id"]), int(job["version"])) for job in jobs
               if job.get("notification_id") is not None and job.get("version") is not None]
    if wanted:
        await _of(ctx).pusher.push_alerts(wanted)


async def _clear(ctx: AppContext, *, user_id: str, notification_ids: list[str]) -> None:
    await _of(ctx).pusher.push_clear(uuid.UUID(user_id), notification_ids)


async def _retry(ctx: AppContext, *, device_id: str, notification_ids: list[str], clear: bool, attempt: int) -> None:
    await _of(ctx).pusher.retry(uuid.UUID(device_id), notification_ids, clear=clear, attempt=attempt)


async def _message_due(ctx: AppContext, *, windows: list[str] | None = None, event_id: str | None = None,
                       message_id: str | None = None, conversation_id: str | None = None,
                       sender_id: str | None = None, seq: int | None = None,
                       recipient_ids: list[str] | None = None) -> None:
    # Jobs enqueued before the due set existed (messages.py polls it now in a worker loop):
    # `windows`: "recipient_id:conversation_id" of pending message windows; the other
    # arguments: one message, as jobs enqueued before windows existed carried it.
    services = _of(ctx)
    if event_id and message_id and conversation_id and sender_id and seq is not None:
        from src.modules.notifications.messages import Pending

        await services.messages.notify_due([
            Pending(uuid.UUID(r), uuid.UUID(conversation_id), uuid.UUID(event_id), seq, uuid.UUID(message_id),
                    uuid.UUID(sender_id)) for r in recipient_ids or []])
    await services.due_batches.submit([_window(name) for name in windows or []])


def _window(name: str) -> tuple[uuid.UUID, uuid.UUID]:
    recipient, _, conversation = name.partition(":")
    return uuid.UUID(recipient), uuid.UUID(conversation)


async def _due_messages(ctx: AppContext) -> float:
    return await _of(ctx).messages.due_round()


async def _digest(ctx: AppContext, *, user_id: str) -> None:
    await _of(ctx).digest.send(uuid.UUID(user_id))


async def _digests(ctx: AppContext, *, user_ids: list[str]) -> None:
    await _of(ctx).digest.send_many([uuid.UUID(u) for u in user_ids])


# Pushes are retried by hand (`retry`, honouring Retry-After), so Dramatiq retries only crashes.
# One push batch at a time: against the local fake, batches side by side were smaller and cost
# more CPU per push than the waits they hid. Against a far FCM, WORKER_BATCHES_RUNNING=2 lets a
# batch be claimed and sent while another waits (safe: a claim is one atomic UPDATE per version).
# Undelayed push jobs take the bulk lane (src/infra/bulk_queue.py): many per fetch, one batch on the loop.
PUSH = TaskSpec(name="notifications.push", queue="push", fn=_push, max_retries=3, time_limit_ms=30_000,
                batch_fn=_push_batch, bulk_queue="push_bulk")
CLEAR = TaskSpec(name="notifications.clear", queue="push", fn=_clear, max_retries=3, time_limit_ms=30_000)
RETRY = TaskSpec(name="notifications.retry_push", queue="push", fn=_retry, max_retries=3, time_limit_ms=30_000)
MESSAGE_DUE = TaskSpec(name="notifications.message_due", queue="push", fn=_message_due, max_retries=5)
DIGEST = TaskSpec(name="notifications.email_digest", queue="email", fn=_digest, max_retries=8)
# The windows opened together (one due round, one group message's members): one job for them all;
# a user whose digest fails gets a DIGEST job of their own (its retries as before).
DIGESTS = TaskSpec(name="notifications.email_digests", queue="email", fn=_digests, max_retries=8,
                   time_limit_ms=600_000)
TASKS = [PUSH, CLEAR, RETRY, MESSAGE_DUE, DIGEST, DIGESTS, PRUNE]
# Due message windows, polled in batches by every worker process serving `push` (messages.py).
DUE_MESSAGES = WorkerLoop(name="notifications.due_messages", queue="push", round=_due_messages)
