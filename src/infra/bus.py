"""The in-process event bus: pyee's asyncio emitter, fed from the outbox, off the request's path.

The bus is fast but not durable: durability comes from the outbox rows the unit of work
wrote. After a commit the events go to this process's `Dispatcher` (a bounded queue drained
by a few background tasks), so a request pays for its own write and never for the listeners,
and a listener that publishes never makes the dispatch recurse. What fails, what the queue
had no room for, and what never ran (a crash) is delivered again by the relay in
`src.infra.outbox`.

Listeners marked `inline` are the exception: cheap by construction (one Redis write), they run
in the publishing request right after the commit, so that what the caller reads next already
reflects the change (privacy's cached permission answers).

Listeners marked `worker` are the other exception: heavy cascades (an account deletion touching
thousands of rows) that must not hold the API's event loop and database connections. They are
never run by this bus's emitters: delivering an event enqueues one Dramatiq task per worker
listener on the `events` queue (`WORKER_LISTENER_TASK`), carrying only the event id and the
listener name. A worker process (which builds every module, so registers the same listeners)
loads the event from its outbox row and runs exactly that listener, with the same inbox claim.
The enqueue counts as that listener's delivery: the outbox row is marked dispatched once every
in-process listener ran and every worker task was enqueued; from there Dramatiq's retries and
dead-letter queue take over. A failed enqueue is a failed delivery, retried by the relay.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar
from uuid import UUID

import structlog
from pyee.asyncio import AsyncIOEventEmitter
from sqlalchemy import func, select, update

from src.common.events import Event
from src.common.events.base import decode_event
from src.infra import metrics
from src.infra.db import Database
from src.infra.outbox_tables import outbox
from src.infra.tasks import TaskQueue, TaskSpec
from src.infra.uow import UnitOfWork

log = structlog.get_logger("chatty.bus")
E = TypeVar("E", bound=Event)
Handler = Callable[[Any], Awaitable[None]]
BatchHandler = Callable[[list[Any]], Awaitable[None]]


async def _run_worker_listener(ctx: Any, event_id: str, listener: str) -> None:
    """The `events` queue's task: run one worker listener of one outbox event (ids only)."""
    await ctx.bus.run_worker_listener(UUID(event_id), listener)


# One task per (event, worker listener); Dramatiq retries it with backoff, then dead-letters it.
WORKER_LISTENER_TASK = TaskSpec(name="infra.run_listener", queue="events", fn=_run_worker_listener,
                                time_limit_ms=600_000)


# Run on the driver pool (asyncpg, prepared per connection), past SQLAlchemy's execution layer:
# the dispatcher runs it every few events. `= ANY(array)`: one statement whatever the number of ids.
_MARK_DELIVERED = ("UPDATE infra.outbox SET dispatched_at = now(), attempts = attempts + 1 "
                   "WHERE event_id = ANY($1::uuid[])")


def backoff(attempts: int, base: float = 1.0) -> timedelta:
    """Delay before retry number `attempts`: 2, 4, 8 … times `base` seconds, at most 10 minutes."""
    return timedelta(seconds=min(base * 2 ** attempts, 600))


class ListenerFailed(Exception):
    """A listener raised; pyee hands this to the emitter's `error` handler."""

    def __init__(self, listener: str, event: Event, cause: BaseException) -> None:
        super().__init__(f"{listener}: {cause!r}")
        self.listener, self.event, self.cause = listener, event, cause


class EventBus:
    """Listeners by event name (pyee emitters); delivery reports which listeners failed."""

    def __init__(self, db: Database, *, max_attempts: int = 8, backoff_base: float = 1.0,
                 fast_path_lease: timedelta = timedelta(seconds=60), dispatch_tasks: int = 4,
                 dispatch_queue: int = 10_000, tasks: TaskQueue | None = None) -> None:
        self._db = db
        self._tasks = tasks  # where worker listeners are enqueued
        # Each outcome update is one statement: autocommit spares the BEGIN / COMMIT round trips.
        self._autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.fast_path_lease = fast_path_lease
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base  # seconds; tests shrink it to retry at once
        self._background = self._emitter()
        self._inline = self._emitter()
        self._names: set[str] = set()
        self._worker_by_event: dict[str, list[str]] = {}  # event name -> worker listener names
        self._worker_handlers: dict[str, Handler] = {}  # worker listener name -> handler
        self._batch_by_event: dict[str, list[tuple[str, BatchHandler]]] = {}  # event name -> batch listeners
        self.dispatcher = Dispatcher(self, tasks=dispatch_tasks, capacity=dispatch_queue)

    @staticmethod
    def _emitter() -> AsyncIOEventEmitter:
        emitter = AsyncIOEventEmitter()
        emitter.on("error", _on_listener_error)  # pyee's "error" always has a listener
        return emitter

    def uow(self) -> UnitOfWork:
        """A new unit of work whose events this bus dispatches."""
        return UnitOfWork(self._db, self)

    def subscribe(self, event_type: type[E], listener_name: str,
                  handler: Callable[[UnitOfWork, E], Awaitable[None]], *, inline: bool = False,
                  worker: bool = False, when: Callable[[E], bool] | None = None) -> None:
        """Listen with inbox idempotency: `handler(tx, event)` runs once per event, in `tx`.

        The inbox row is written in the same transaction as the handler's effect. `inline` and
        `worker` as for `subscribe_idempotent` (inline: one short statement the caller's next
        read depends on; worker: a cascade that may touch thousands of rows). `when`: a cheap
        test of the event; an event it refuses is delivered as done without a transaction (a
        listener that has nothing to do for most events of a hot path, e.g. messages without media).
        """
        async def once(event: E) -> None:
            if when is not None and not when(event):
                return
            async with self.uow() as tx:
                if await tx.claim(listener_name, event.event_id):
                    await handler(tx, event)

        once.when = when  # type: ignore[attr-defined]  # `deliver` skips a refused event without a call
        self._add(event_type.name, listener_name, once, inline=inline, worker=worker)

    def subscribe_idempotent(self, event_type: type[E], listener_name: str,
                             handler: Callable[[E], Awaitable[None]], *, inline: bool = False,
                             worker: bool = False) -> None:
        """Listen with a handler whose effect is naturally idempotent (deleting cache keys).

        `inline` runs it in the publishing request right after the commit: only for a handler
        that is cheap by construction (one Redis round trip) and that the caller's next read
        depends on. `worker` runs it in a Dramatiq worker process (queue `events`), never in
        this one: for cascades that grow with a user's graph.
        """
        self._add(event_type.name, listener_name, handler, inline=inline, worker=worker)

    def subscribe_batch(self, event_type: type[E], listener_name: str,
                        handler: Callable[[list[E]], Awaitable[None]]) -> None:
        """Listen with a naturally idempotent handler of several events at once (background only):
        the dispatcher hands it the events of this name it took together (one Redis round trip
        for them all, say), the relay one event at a time. A failure fails every event given."""
        if listener_name in self._names:
            raise ValueError(f"listener name {listener_name!r} is used twice")
        self._names.add(listener_name)
        self._batch_by_event.setdefault(event_type.name, []).append((listener_name, handler))

    def _add(self, event_name: str, listener_name: str, handler: Handler, *, inline: bool, worker: bool) -> None:
        if listener_name in self._names:
            raise ValueError(f"listener name {listener_name!r} is used twice")
        if inline and worker:
            raise ValueError(f"listener {listener_name!r} cannot be both inline and worker")
        self._names.add(listener_name)
        if worker:
            self._worker_by_event.setdefault(event_name, []).append(listener_name)
            self._worker_handlers[listener_name] = handler
            return
        emitter = self._inline if inline else self._background

        async def run(event: Event) -> None:
            await handler(event)

        run.listener_name = listener_name  # type: ignore[attr-defined]
        run.when = getattr(handler, "when", None)  # type: ignore[attr-defined]
        emitter.on(event_name, run)

    def listener_names(self, event_name: str, *, worker: bool = False) -> list[str]:
        """The names of the listeners of an event that run in this process, or with `worker`
        those delegated to worker processes (for tests and diagnostics)."""
        if worker:
            return list(self._worker_by_event.get(event_name, []))
        return [*(getattr(h, "listener_name", "?") for emitter in (self._inline, self._background)
                  for h in emitter.listeners(event_name)),
                *(name for name, _ in self._batch_by_event.get(event_name, []))]

    async def deliver(self, event: Event, *, inline: bool = True, background: bool = True) -> list[str]:
        """Run the listeners of `event` (side by side) and (with `background`) enqueue its worker
        listeners; return the errors of those that failed (each also emitted as pyee's `error`).

        The listeners registered on the emitters are called here rather than through pyee's
        `emit`, which wraps every listener in a task of its own: the dispatcher delivers every
        committed event (a 1:1 message's too), so a task, an `asyncio.Event` and a listener run
        skipped by its `when` per event were a visible share of the API's CPU. A lone listener is
        awaited in the caller's task (the dispatcher's); with `inline` (the publishing request)
        the run is shielded from the request's cancellation, as a separate task was.
        """
        errors = await self._delegate(event) if background else []
        if background and event.name in self._batch_by_event:  # the relay's path; the dispatcher's
            errors += (await self._run_batch([event]))[0]       # goes through `deliver_many`
        return errors + await self._deliver_one(event, inline=inline, background=background)

    async def deliver_many(self, events: Sequence[Event]) -> list[list[str]]:
        """The dispatcher's `deliver(event, inline=False)` of several events: each batch listener
        once for the events of its name, then the other listeners one event at a time (so that at
        most one event per dispatcher task holds database connections); the errors per event."""
        errors = await self._run_batch(events)
        for i, event in enumerate(events):
            errors[i] = await self._delegate(event) + errors[i]
            errors[i] += await self._deliver_one(event, inline=False, background=True)
        return errors

    async def _run_batch(self, events: Sequence[Event]) -> list[list[str]]:
        errors: list[list[str]] = [[] for _ in events]
        names = {e.name for e in events if e.name in self._batch_by_event}
        for name in names:
            indices = [i for i, e in enumerate(events) if e.name == name]
            for listener_name, handler in self._batch_by_event[name]:
                try:
                    await handler([events[i] for i in indices])
                except Exception as exc:
                    self._background.emit("error", ListenerFailed(listener_name, events[indices[0]], exc))
                    for i in indices:
                        errors[i].append(f"{listener_name}: {exc!r}")
        return errors

    async def _deliver_one(self, event: Event, *, inline: bool, background: bool) -> list[str]:
        runs = [(emitter, h) for emitter, on in ((self._inline, inline), (self._background, background)) if on
                for h in emitter.listeners(event.name) if (when := getattr(h, "when", None)) is None or when(event)]
        if not runs:
            return []
        if inline:
            return await asyncio.shield(self._run_all(runs, event))
        return await self._run_all(runs, event)

    @staticmethod
    async def _run_all(runs: list[tuple[AsyncIOEventEmitter, Handler]], event: Event) -> list[str]:
        if len(runs) == 1:
            failed = [await _run_listener(*runs[0], event)]
        else:
            failed = await asyncio.gather(*(_run_listener(emitter, h, event) for emitter, h in runs))
        return [error for error in failed if error is not None]

    async def _delegate(self, event: Event) -> list[str]:
        """Enqueue one `events` task per worker listener of `event`; the errors of failed enqueues."""
        names = self._worker_by_event.get(event.name)
        if not names:
            return []
        if self._tasks is None:
            return [f"{name}: no task queue to run worker listeners" for name in names]
        return await asyncio.to_thread(self._enqueue, self._tasks, event.event_id, names)

    @staticmethod
    def _enqueue(tasks: TaskQueue, event_id: UUID, names: list[str]) -> list[str]:
        errors = []
        for name in names:
            try:
                tasks.enqueue(WORKER_LISTENER_TASK, event_id=str(event_id), listener=name)
            except Exception as exc:  # the relay delivers the event again
                metrics.LISTENER_FAILURES.labels(name).inc()
                log.warning("bus.enqueue_failed", listener=name, event_id=str(event_id), error=repr(exc))
                errors.append(f"{name}: enqueue failed: {exc!r}")
        return errors

    async def run_worker_listener(self, event_id: UUID, listener_name: str) -> None:
        """In a worker process: run the worker listener `listener_name` on the outbox event
        `event_id` (raises on failure, so that Dramatiq retries it)."""
        handler = self._worker_handlers.get(listener_name)
        if handler is None:  # a worker of another release: let another worker take it (retry)
            raise LookupError(f"no worker listener {listener_name!r} in this process")
        async with self._db.session() as session:
            row = (await session.execute(
                select(outbox.c.name, outbox.c.payload).where(outbox.c.event_id == event_id))).first()
        if row is None:  # pruned (delivered more than a week ago): nothing left to do
            log.warning("bus.worker_event_missing", listener=listener_name, event_id=str(event_id))
            return
        event = decode_event(row.name, row.payload)
        try:
            await handler(event)
        except Exception as exc:
            _on_listener_error(ListenerFailed(listener_name, event, exc))
            raise

    async def committed(self, events: Sequence[Event]) -> None:
        """After a commit: run the inline listeners now, queue the rest for the dispatcher."""
        inline_errors = {}
        for event in events:
            if errors := await self.deliver(event, background=False):
                inline_errors[event.event_id] = errors
        self.dispatcher.submit([(event, inline_errors.get(event.event_id, [])) for event in events],
                               idle=[e for e in events if not self._background.listeners(e.name)
                                     and e.name not in self._worker_by_event and e.name not in self._batch_by_event])

    async def drain(self) -> None:
        """Wait until this process's dispatcher has delivered everything it was given."""
        await self.dispatcher.drain()

    async def mark(self, outcomes: Sequence[tuple[Event, list[str]]]) -> None:
        """Record the dispatcher's outcomes on the outbox rows (one statement for the delivered)."""
        delivered = [e.event_id for e, errors in outcomes if not errors]
        failed = [(e, errors) for e, errors in outcomes if errors]
        try:
            if delivered:
                async with self._db.driver_connection() as conn:
                    await conn.execute(_MARK_DELIVERED, delivered)
            if not failed:
                return
            async with self._autocommit.connect() as session:
                for event, errors in failed:
                    await session.execute(
                        update(outbox).where(outbox.c.event_id == event.event_id)
                        .values(attempts=outbox.c.attempts + 1, last_error="; ".join(errors)[:2000],
                                next_attempt_at=func.now() + backoff(1, self.backoff_base)))
        except Exception as exc:  # the relay will deliver again; listeners are idempotent
            metrics.OUTBOX_ERRORS.inc()
            log.warning("bus.mark_failed", error=repr(exc))


async def _run_listener(emitter: AsyncIOEventEmitter, handler: Handler, event: Event) -> str | None:
    """Run one listener; its error as text (None when it succeeded), also emitted as `error`."""
    try:
        await handler(event)
    except Exception as exc:
        name = getattr(handler, "listener_name", "?")
        emitter.emit("error", ListenerFailed(name, event, exc))
        return f"{name}: {exc!r}"
    return None


def _on_listener_error(exc: BaseException) -> None:
    if isinstance(exc, ListenerFailed):
        metrics.LISTENER_FAILURES.labels(exc.listener).inc()
        log.warning("bus.listener_failed", listener=exc.listener, event_name=exc.event.name,
                    event_id=str(exc.event.event_id), error=repr(exc.cause))
    else:
        metrics.LISTENER_FAILURES.labels("?").inc()
        log.error("bus.emitter_error", error=repr(exc))


class Dispatcher:
    """A bounded queue of committed events, drained by at most `tasks` background tasks.

    Tasks are started on demand and end when the queue is empty, so nothing runs while idle
    and no process has to start or stop it. A full queue drops the event: its outbox row is
    leased to this process only for `fast_path_lease`, after which the relay delivers it.
    """

    def __init__(self, bus: EventBus, *, tasks: int, capacity: int, batch: int = 50,
                 linger: float = 0.05) -> None:
        self._bus = bus
        self._queue: deque[tuple[Event, list[str]]] = deque()
        self._capacity, self._max_tasks, self._batch = capacity, tasks, batch
        self._tasks: set[asyncio.Task[None]] = set()
        # Outcomes are written to the outbox `linger` seconds after the first one waits, all in
        # one statement: at 500 events/s that is one UPDATE per 25 events, not one per event.
        self._linger = linger
        self._outcomes: list[tuple[Event, list[str]]] = []
        self._marker: asyncio.Task[None] | None = None

    def submit(self, items: Sequence[tuple[Event, list[str]]], idle: Sequence[Event] = ()) -> None:
        """Queue committed events (with the errors of their inline listeners, if any); those in
        `idle` have no background listener here: only their outcome is recorded."""
        skip = {e.event_id for e in idle}
        if skip:
            self._outcomes.extend(item for item in items if item[0].event_id in skip)
            self._mark_later()
            items = [item for item in items if item[0].event_id not in skip]
        for item in items:
            if len(self._queue) >= self._capacity:
                metrics.DISPATCH_DROPPED.inc()
                log.warning("bus.dispatch_queue_full", event_name=item[0].name, event_id=str(item[0].event_id))
                continue
            self._queue.append(item)
        while self._queue and len(self._tasks) < min(self._max_tasks, len(self._queue)):
            # A fresh context: the dispatch is not part of the request that happened to start it.
            task = asyncio.get_running_loop().create_task(self._drain_queue(), name="bus-dispatch",
                                                          context=contextvars.Context())
            self._tasks.add(task)

    async def _drain_queue(self) -> None:
        me = asyncio.current_task()
        try:
            while self._queue:
                items = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
                # Batch listeners once for the lot; the others one event at a time per task (its
                # listeners side by side): at most `tasks` events hold database connections.
                done = [(event, inline + errors) for (event, inline), errors
                        in zip(items, await self._deliver([event for event, _ in items]), strict=True)]
                # Appended only now: `_mark_soon` may have swapped the list during the awaits.
                self._outcomes.extend(done)
                self._mark_later()
        finally:
            # Leave the set before returning (no await after the empty check), so that a submit
            # never counts a task that will not look at the queue again.
            self._tasks.discard(me)  # type: ignore[arg-type]

    def _mark_later(self) -> None:
        if self._marker is None and self._outcomes:
            self._marker = asyncio.get_running_loop().create_task(
                self._mark_soon(), name="bus-mark", context=contextvars.Context())

    async def _mark_soon(self) -> None:
        await asyncio.sleep(self._linger)
        outcomes, self._outcomes, self._marker = self._outcomes, [], None
        await self._bus.mark(outcomes)

    async def _deliver(self, events: list[Event]) -> list[list[str]]:
        try:
            return await self._bus.deliver_many(events)
        except Exception as exc:  # never lose the rest of the batch
            return [[repr(exc)] for _ in events]

    async def drain(self) -> None:
        """Wait until the queue is empty, every task has ended and every outcome is recorded."""
        while self._tasks or self._marker:
            await asyncio.gather(*self._tasks, *([self._marker] if self._marker else []), return_exceptions=True)

    @property
    def backlog(self) -> int:
        """Events queued, not yet taken by a task."""
        return len(self._queue)
