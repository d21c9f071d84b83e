"""The in-process event bus (pyee) with outbox-backed, at-least-once delivery.

The bus is fast but not durable: durability comes from the outbox rows the unit of work
wrote. After a commit the bus delivers at once; what fails (or never ran, after a crash)
is delivered again by the relay in `src.infra.outbox`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from pyee import EventEmitter
from sqlalchemy import func, update

from src.common.events import Event
from src.infra import metrics
from src.infra.db import Database
from src.infra.outbox_tables import outbox
from src.infra.uow import UnitOfWork

log = structlog.get_logger("chatty.bus")
E = TypeVar("E", bound=Event)
Handler = Callable[[Any], Awaitable[None]]


def backoff(attempts: int, base: float = 1.0) -> timedelta:
    """Delay before retry number `attempts`: 2, 4, 8 … times `base` seconds, at most 10 minutes."""
    return timedelta(seconds=min(base * 2 ** attempts, 600))


class EventBus:
    """Listeners by event name; delivery reports which listeners failed."""

    def __init__(self, db: Database, *, max_attempts: int = 8, backoff_base: float = 1.0,
                 fast_path_lease: timedelta = timedelta(seconds=60)) -> None:
        self._db = db
        self.fast_path_lease = fast_path_lease
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base  # seconds; tests shrink it to retry at once
        self._emitter = EventEmitter()
        self._emitter.on("error", lambda exc: log.error("bus.emitter_error", error=repr(exc)))
        self._names: dict[Handler, str] = {}

    def uow(self) -> UnitOfWork:
        """A new unit of work whose events this bus dispatches."""
        return UnitOfWork(self._db, self)

    def subscribe(self, event_type: type[E], listener_name: str,
                  handler: Callable[[UnitOfWork, E], Awaitable[None]]) -> None:
        """Listen with inbox idempotency: `handler(tx, event)` runs once per event, in `tx`.

        The inbox row is written in the same transaction as the handler's effect.
        """
        async def once(event: E) -> None:
            async with self.uow() as tx:
                if await tx.claim(listener_name, event.event_id):
                    await handler(tx, event)

        self._add(event_type.name, listener_name, once)

    def subscribe_idempotent(self, event_type: type[E], listener_name: str,
                             handler: Callable[[E], Awaitable[None]]) -> None:
        """Listen with a handler whose effect is naturally idempotent (deleting cache keys)."""
        self._add(event_type.name, listener_name, handler)

    def _add(self, event_name: str, listener_name: str, handler: Handler) -> None:
        if listener_name in self._names.values():
            raise ValueError(f"listener name {listener_name!r} is used twice")
        self._names[handler] = listener_name
        self._emitter.on(event_name, handler)

    def listener_names(self, event_name: str) -> list[str]:
        """The names of the listeners of an event (for tests and diagnostics)."""
        return [self._names[h] for h in self._emitter.listeners(event_name)]

    async def deliver(self, event: Event) -> list[str]:
        """Run every listener of `event`; return the errors of those that failed."""
        errors = []
        for handler in self._emitter.listeners(event.name):
            try:
                await handler(event)
            except Exception as exc:
                name = self._names.get(handler, "?")
                log.warning("bus.listener_failed", listener=name, event_name=event.name,
                            event_id=str(event.event_id), error=repr(exc))
                errors.append(f"{name}: {exc!r}")
        return errors

    async def dispatch_committed(self, events: Sequence[Event]) -> None:
        """Fast path after a commit: deliver now, then record the outcome on the outbox rows."""
        delivered: list[tuple[Event, list[str]]] = []
        failed: list[tuple[Event, list[str]]] = []
        for event in events:
            errors = await self.deliver(event)
            (failed if errors else delivered).append((event, errors))
        try:
            async with self._db.session() as session, session.begin():
                if delivered:
                    await session.execute(
                        update(outbox).where(outbox.c.event_id.in_([e.event_id for e, _ in delivered]))
                        .values(dispatched_at=func.now(), attempts=outbox.c.attempts + 1))
                for event, errors in failed:
                    await session.execute(
                        update(outbox).where(outbox.c.event_id == event.event_id)
                        .values(attempts=outbox.c.attempts + 1, last_error="; ".join(errors)[:2000],
                                next_attempt_at=func.now() + backoff(1, self.backoff_base)))
        except Exception as exc:  # the relay will deliver again; listeners are idempotent
            metrics.OUTBOX_ERRORS.inc()
            log.warning("bus.mark_failed", error=repr(exc))
