"""Unit of work: one transaction for state and the events it publishes."""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy import func, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from src.common.events import Event
from src.infra.db import Database
from src.infra.outbox_tables import inbox, outbox

if TYPE_CHECKING:
    from src.infra.bus import EventBus


class UnitOfWork:
    """`async with uow() as tx:` — commit on success, roll back on error.

    Events published with `tx.publish` are written to the outbox in the same transaction
    and handed to the bus after the commit (never before it).
    """

    def __init__(self, db: Database, bus: EventBus) -> None:
        self._db = db
        self._bus = bus
        self._events: list[Event] = []
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
                # The row is leased to this process's fast path; the relay takes over only
                # if the lease runs out (a crash, or a fast path still busy with a long batch).
                leased = insert(outbox).values(next_attempt_at=func.now() + self._bus.fast_path_lease)
                await self.session.execute(leased, [
                    {"event_id": e.event_id, "name": e.name, "payload": e.to_payload()} for e in self._events
                ])
            await self.session.commit()
        finally:
            await self.session.close()
        if self._events:
            await self._bus.dispatch_committed(self._events)

    def publish(self, event: Event) -> None:
        """Publish `event` when (and only if) this unit of work commits."""
        self._events.append(event)

    async def claim(self, listener: str, event_id: uuid.UUID) -> bool:
        """Record that `listener` handles `event_id`; False when it already did (skip it)."""
        result = await self.session.execute(
            pg_insert(inbox).values(listener=listener, event_id=event_id)
            .on_conflict_do_nothing().returning(inbox.c.event_id)
        )
        return result.first() is not None
