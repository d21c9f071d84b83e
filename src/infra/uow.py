"""Unit of work: one transaction for state, the events it publishes, and what runs after it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import bindparam, func, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from src.common.events import Event
from src.infra.db import Database
from src.infra.outbox_tables import inbox, outbox

if TYPE_CHECKING:
    from src.infra.bus import EventBus

log = structlog.get_logger("chatty.uow")
AfterCommit = Callable[[], Awaitable[object]]
# Built once: every listener run claims its event, and building the statement each time (then its
# cache key) cost more than running it.
_CLAIM = (pg_insert(inbox).values(listener=bindparam("listener"), event_id=bindparam("event_id"))
          .on_conflict_do_nothing().returning(inbox.c.event_id))


class UnitOfWork:
    """`async with uow() as tx:` — commit on success, roll back on error.

    Events published with `tx.publish` are written to the outbox in the same transaction
    and handed to the bus after the commit (never before it). Callbacks registered with
    `tx.on_commit` (socket emits, stream appends) run after the commit, in the caller's path,
    and never after a rollback.
    """

    def __init__(self, db: Database, bus: EventBus) -> None:
        self._db = db
        self._bus = bus
        self._events: list[Event] = []
        self._after: list[AfterCommit] = []
        self.session: AsyncSession

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._db.session()
        await self.session.begin()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if exc_type is not None:
                await self.session.rollback()
                return
            if self._events:
                # The row is leased to this process's dispatcher; the relay takes over only
                # if the lease runs out (a crash, a full queue, a dispatcher still busy).
                leased = insert(outbox).values(next_attempt_at=func.now() + self._bus.fast_path_lease)
                await self.session.execute(leased, [
                    {"event_id": e.event_id, "name": e.name, "payload": e.to_payload()} for e in self._events
                ])
            await self.session.commit()
        finally:
            await self.session.close()
        await run_after_commit(self._after)
        if self._events:
            await self._bus.committed(self._events)

    def publish(self, event: Event) -> None:
        """Publish `event` when (and only if) this unit of work commits."""
        self._events.append(event)

    def on_commit(self, callback: AfterCommit) -> None:
        """Run `callback()` after the commit (only if it commits); its errors are logged, not raised."""
        self._after.append(callback)

    async def claim(self, listener: str, event_id: uuid.UUID) -> bool:
        """Record that `listener` handles `event_id`; False when it already did (skip it)."""
        result = await self.session.execute(_CLAIM, {"listener": listener, "event_id": event_id})
        return result.first() is not None


async def run_after_commit(callbacks: list[AfterCommit]) -> None:
    """Run after-commit callbacks side by side; a failure is logged (the data is committed)."""
    if not callbacks:
        return
    results = await asyncio.gather(*(c() for c in callbacks), return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            log.warning("uow.after_commit_failed", error=repr(result))
