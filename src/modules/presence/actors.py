"""Background work of presence (Dramatiq, queue `presence`): announcing transitions, the sweep.

The sweep is a chain: each run settles what is due, then enqueues the next run
`PRESENCE_SWEEP_INTERVAL` later with its lease id (`chain`). One chain runs at a time: a run whose id
no longer holds the lease `presence:sweeper` stops, and a kick (periodic, every 30 s, or from an
API process after a disconnect) starts a chain only when the lease is free (it lapses 5
intervals after a chain died). A run never fails (it logs), so no retry forks the chain.
"""

from __future__ import annotations

import uuid

import structlog

from src.common.ids import new_id
from src.infra.context import AppContext
from src.infra.tasks import TaskSpec
from src.modules.presence.service import PresenceService
from src.modules.presence.state import PREFIX

log = structlog.get_logger("chatty.presence")
LEASE_KEY = f"{PREFIX}sweeper"
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def service(ctx: AppContext) -> PresenceService:
    return PresenceService(ctx, lambda: sweep_task, lambda: announce_task)


async def _sweep(ctx: AppContext, chain: str | None = None) -> None:
    interval = ctx.settings.presence_sweep_interval
    lease_ms = int(max(5 * interval, 5.0) * 1000)
    if chain is None:
        chain = new_id().hex
        if not await ctx.redis.set(LEASE_KEY, chain, nx=True, px=lease_ms):
            return  # a chain is running
    elif not await ctx.redis.eval(_EXTEND, 1, LEASE_KEY, chain, lease_ms):  # type: ignore[misc]
        return  # this chain lost its lease: another one took over
    try:
        await service(ctx).settle_due()
    except Exception as exc:
        log.warning("presence.sweep_failed", error=repr(exc))
    finally:
        ctx.tasks.enqueue(sweep_task, delay_ms=int(interval * 1000), chain=chain)


async def _announce(ctx: AppContext, user_id: str | None = None, user_ids: list[str] | None = None) -> None:
    """Announce `user_ids` (API processes batch them; `user_id`: one, as enqueued before batching)."""
    await service(ctx).announce_many([uuid.UUID(u) for u in [*(user_ids or []), *([user_id] if user_id else [])]])


sweep_task = TaskSpec(name="presence.sweep", queue="presence", fn=_sweep, max_retries=0, time_limit_ms=60_000,
                      every_seconds=30)
announce_task = TaskSpec(name="presence.announce", queue="presence", fn=_announce, max_retries=3,
                         min_backoff_ms=500, max_backoff_ms=5_000)
TASKS = [sweep_task, announce_task]
