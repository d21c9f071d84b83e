"""The outbox relay: delivers events whose fast path failed or never ran (a crash).

Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several API processes can relay
together without delivering one row twice at the same time.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from sqlalchemy import and_, func, select, update

from src.common.events.base import decode_event
from src.infra import metrics
from src.infra.bus import EventBus, backoff
from src.infra.db import Database
from src.infra.outbox_tables import outbox

log = structlog.get_logger("chatty.outbox")

# The fast path marks its rows within milliseconds; the relay leaves younger rows alone.
FAST_PATH_GRACE = timedelta(seconds=5)


class OutboxRelay:
    """Claims due rows in batches, delivers them, retries with backoff, marks dead rows."""

    def __init__(self, db: Database, bus: EventBus, *, interval: float = 1.0, batch: int = 50,
                 grace: timedelta = FAST_PATH_GRACE) -> None:
        self._db, self._bus = db, bus
        self.interval, self.batch, self.grace = interval, batch, grace
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """Deliver one batch of due rows; return how many rows it handled."""
        async with self._db.session() as session, session.begin():
            rows = (await session.execute(
                select(outbox.c.id, outbox.c.name, outbox.c.payload, outbox.c.attempts)
                .where(and_(outbox.c.dispatched_at.is_(None), outbox.c.dead_at.is_(None),
                            outbox.c.next_attempt_at <= func.now(),
                            outbox.c.created_at <= func.now() - self.grace))
                .order_by(outbox.c.id).limit(self.batch)
                .with_for_update(skip_locked=True)
            )).all()
            for row in rows:
                await self._deliver_row(session, row)
        return len(rows)

    async def _deliver_row(self, session, row) -> None:  # type: ignore[no-untyped-def]
        try:
            errors = await self._bus.deliver(decode_event(row.name, row.payload))
        except Exception as exc:  # undecodable payload or unknown event name
            errors = [repr(exc)]
        attempts = row.attempts + 1
        if not errors:
            values = {"dispatched_at": func.now(), "attempts": attempts}
        elif attempts >= self._bus.max_attempts:
            values = {"dead_at": func.now(), "attempts": attempts, "last_error": "; ".join(errors)[:2000]}
            metrics.OUTBOX_DEAD_TOTAL.inc()
            log.error("outbox.dead", outbox_id=row.id, event_name=row.name, attempts=attempts, errors=errors)
        else:
            values = {"attempts": attempts, "last_error": "; ".join(errors)[:2000],
                      "next_attempt_at": func.now() + backoff(attempts, self._bus.backoff_base)}
        await session.execute(update(outbox).where(outbox.c.id == row.id).values(**values))

    async def _loop(self) -> None:
        while True:
            try:
                while await self.run_once() == self.batch:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox.relay_error", error=repr(exc))
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Run the relay loop in the background."""
        self._task = asyncio.create_task(self._loop(), name="outbox-relay")

    async def stop(self) -> None:
        """Stop the relay loop."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def outbox_counts(db: Database) -> tuple[int, int]:
    """(backlog, dead): rows still to deliver and rows given up on."""
    async with db.session() as session:
        row = (await session.execute(select(
            func.count().filter(and_(outbox.c.dispatched_at.is_(None), outbox.c.dead_at.is_(None))),
            func.count().filter(outbox.c.dead_at.is_not(None)),
        ))).one()
    return int(row[0]), int(row[1])
