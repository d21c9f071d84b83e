"""The event bus and the outbox relay, in-process against a real (migrated) PostgreSQL database.

The database is this module's own, so the suite's API process (whose relay watches the shared
test database) and these relays never claim each other's rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from src.common.events import Event
from src.infra.bus import WORKER_LISTENER_TASK, EventBus
from src.infra.db import Database
from src.infra.outbox import OutboxRelay, outbox_counts
from src.infra.outbox_tables import outbox
from src.infra.tasks import TaskQueue, TaskSpec
from src.infra.uow import UnitOfWork
from tests.conftest import fresh_database, migrate

NO_GRACE = timedelta(0)


class Pinged(Event, frozen=True, kw_only=True):
    """A throwaway event of this test module."""

    name = "test.bus_pinged.v1"
    key: str


class Ponged(Event, frozen=True, kw_only=True):
    """Another throwaway event of this test module."""

    name = "test.bus_ponged.v1"
    key: str


@pytest.fixture(scope="module")
async def bus_db_url(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh database with every migration applied, dropped afterwards."""
    async with fresh_database(pg_server_url, "chatty_bus") as url:
        done = await asyncio.to_thread(migrate, url)
        assert done.returncode == 0, done.stdout + done.stderr
        conn = await asyncpg.connect(url)
        try:  # where the test listeners leave their effects
            await conn.execute("CREATE TABLE public.bus_effects (listener text NOT NULL, key text NOT NULL)")
        finally:
            await conn.close()
        yield url


@pytest.fixture(scope="module")
async def db(bus_db_url: str) -> AsyncIterator[Database]:
    database = Database(make_url(bus_db_url).set(drivername="postgresql+asyncpg")
                        .render_as_string(hide_password=False), pool_size=5)
    yield database
    await database.dispose()


def recorder(listener: str) -> Any:
    """An inbox listener's handler: one `bus_effects` row per run, in the listener's transaction."""
    async def record(tx: UnitOfWork, event: Pinged | Ponged) -> None:
        await tx.session.execute(text("INSERT INTO public.bus_effects (listener, key) VALUES (:l, :k)"),
                                 {"l": listener, "k": event.key})
    return record


async def effects(db: Database, key: str) -> Counter[str]:
    """How many times each listener left its effect for `key`."""
    async with db.session() as session:
        rows = (await session.execute(text("SELECT listener FROM public.bus_effects WHERE key = :k"),
                                      {"k": key})).scalars().all()
    return Counter(rows)


async def outbox_row(db: Database, event_id: uuid.UUID) -> Any:
    async with db.session() as session:
        return (await session.execute(outbox.select().where(outbox.c.event_id == event_id))).one()


async def write_without_dispatch(db: Database, *events: Event) -> None:
    """Commit outbox rows as a unit of work does, then "crash" before the bus dispatches them."""
    async with db.session() as session, session.begin():
        await session.execute(insert(outbox), [
            {"event_id": e.event_id, "name": e.name, "payload": e.to_payload()} for e in events])


async def test_an_event_delivered_twice_has_one_effect(db: Database) -> None:
    bus = EventBus(db)
    bus.subscribe(Pinged, "test.bus.record_once", recorder("once"))
    event = Pinged(key=uuid.uuid4().hex)
    assert await bus.deliver(event) == []
    assert await bus.deliver(event) == []
    # Rebuilt from its outbox form (what the relay delivers), it is still the same event.
    assert await bus.deliver(Pinged(**event.to_payload())) == []
    assert await effects(db, event.key) == {"once": 1}
    assert bus.listener_names(Pinged.name) == ["test.bus.record_once"]


async def test_publish_delivers_after_commit_and_marks_the_row(db: Database) -> None:
    bus = EventBus(db)
    bus.subscribe(Pinged, "test.bus.record_fast", recorder("fast"))
    event = Pinged(key=uuid.uuid4().hex)
    async with bus.uow() as tx:
        tx.publish(event)
        assert await effects(db, event.key) == {}  # nothing before the commit
    await bus.drain()  # listeners run off the caller's path, after the commit
    assert await effects(db, event.key) == {"fast": 1}
    row = await outbox_row(db, event.event_id)
    assert row.dispatched_at is not None and row.attempts == 1

    # A unit of work that fails publishes nothing.
    lost = Pinged(key=uuid.uuid4().hex)
    with pytest.raises(RuntimeError):
        async with bus.uow() as tx:
            tx.publish(lost)
            raise RuntimeError("rolled back")
    assert await effects(db, lost.key) == {}
    async with db.session() as session:
        assert await session.scalar(text("SELECT count(*) FROM infra.outbox WHERE event_id = :id"),
                                    {"id": lost.event_id}) == 0


async def test_a_committed_event_that_was_never_dispatched_is_relayed_once(db: Database) -> None:
    event = Pinged(key=uuid.uuid4().hex)
    await write_without_dispatch(db, event)

    bus = EventBus(db)  # the process that starts after the crash
    bus.subscribe(Pinged, "test.bus.record_relayed", recorder("relayed"))
    # The default grace leaves young rows to the fast path.
    assert await OutboxRelay(db, bus).run_once() == 0
    assert await effects(db, event.key) == {}

    relay = OutboxRelay(db, bus, grace=NO_GRACE)
    assert await relay.run_once() == 1
    assert await effects(db, event.key) == {"relayed": 1}
    row = await outbox_row(db, event.event_id)
    assert row.dispatched_at is not None and row.dead_at is None and row.attempts == 1
    assert await relay.run_once() == 0
    assert await effects(db, event.key) == {"relayed": 1}


async def test_a_failing_listener_ends_dead_without_blocking_others(db: Database) -> None:
    bus = EventBus(db, max_attempts=3, backoff_base=0.01)
    calls: Counter[str] = Counter()

    async def always_fails(tx: UnitOfWork, event: Pinged) -> None:
        calls[event.key] += 1
        await tx.session.execute(text("INSERT INTO public.bus_effects (listener, key) VALUES ('bad', :k)"),
                                 {"k": event.key})
        raise RuntimeError("the mail server is on fire")

    bus.subscribe(Pinged, "test.bus.always_fails", always_fails)
    bus.subscribe(Pinged, "test.bus.record_sibling", recorder("sibling"))
    bus.subscribe(Ponged, "test.bus.record_other", recorder("other"))
    poisoned, other = Pinged(key=uuid.uuid4().hex), Ponged(key=uuid.uuid4().hex)
    async with bus.uow() as tx:
        tx.publish(poisoned)
        tx.publish(other)
    await bus.drain()

    # The fast path ran both; the failure is recorded for a retry.
    row = await outbox_row(db, poisoned.event_id)
    assert row.dispatched_at is None and row.attempts == 1 and "on fire" in row.last_error
    assert (await outbox_row(db, other.event_id)).dispatched_at is not None

    relay = OutboxRelay(db, bus, grace=NO_GRACE)
    for _ in range(200):
        await relay.run_once()
        row = await outbox_row(db, poisoned.event_id)
        if row.dead_at is not None:
            break
        await asyncio.sleep(0.02)
    assert row.dead_at is not None and row.dispatched_at is None
    assert row.attempts == 3 and "on fire" in row.last_error
    assert calls[poisoned.key] == 3
    # The failing listener's writes were rolled back every time; its sibling ran once.
    assert await effects(db, poisoned.key) == {"sibling": 1}
    assert await effects(db, other.key) == {"other": 1}

    # A dead row is not retried any more, and later events still flow.
    await asyncio.sleep(0.1)
    await relay.run_once()
    assert calls[poisoned.key] == 3
    later = Ponged(key=uuid.uuid4().hex)
    async with bus.uow() as tx:
        tx.publish(later)
    await bus.drain()
    assert await effects(db, later.key) == {"other": 1}
    assert (await outbox_counts(db))[1] >= 1  # counted as dead (the metric's source)


async def test_two_relays_deliver_each_row_once(db: Database) -> None:
    events = [Pinged(key=f"pair-{uuid.uuid4().hex}") for _ in range(30)]
    await write_without_dispatch(db, *events)
    delivered: Counter[uuid.UUID] = Counter()
    by_relay: Counter[str] = Counter()

    def counting(relay_name: str) -> Any:
        # Counts deliveries, not effects: no inbox here, so a double delivery would show.
        async def count(event: Pinged) -> None:
            delivered[event.event_id] += 1
            by_relay[relay_name] += 1
            await asyncio.sleep(0.01)  # hold the claimed rows a while
        return count

    relays = []
    for name in ("a", "b"):
        bus = EventBus(db)
        bus.subscribe_idempotent(Pinged, f"test.bus.count_{name}", counting(name))
        relays.append(OutboxRelay(db, bus, batch=5, grace=NO_GRACE))

    async def drain(relay: OutboxRelay) -> None:
        while await relay.run_once():
            pass

    await asyncio.gather(*(drain(r) for r in relays))
    assert {e.event_id for e in events} <= set(delivered)
    assert max(delivered[e.event_id] for e in events) == 1
    assert by_relay["a"] > 0 and by_relay["b"] > 0  # they really ran side by side
    async with db.session() as session:
        pending = await session.scalar(
            text("SELECT count(*) FROM infra.outbox WHERE dispatched_at IS NULL AND name = :n AND "
                 "payload->>'key' LIKE 'pair-%'"), {"n": Pinged.name})
    assert pending == 0


async def test_relay_loop_runs_in_the_background(db: Database) -> None:
    bus = EventBus(db)
    bus.subscribe(Ponged, "test.bus.record_loop", recorder("loop"))
    relay = OutboxRelay(db, bus, interval=0.05, grace=NO_GRACE)
    relay.start()
    try:
        event = Ponged(key=uuid.uuid4().hex)
        await write_without_dispatch(db, event)
        for _ in range(100):
            if await effects(db, event.key):
                break
            await asyncio.sleep(0.05)
        assert await effects(db, event.key) == {"loop": 1}
    finally:
        await relay.stop()


async def test_listeners_run_off_the_callers_path_and_errors_reach_pyee(db: Database) -> None:
    bus = EventBus(db)
    started, release = asyncio.Event(), asyncio.Event()
    seen: list[str] = []

    async def slow(event: Pinged) -> None:
        started.set()
        await release.wait()
        seen.append(event.key)

    async def broken(event: Pinged) -> None:
        raise RuntimeError("boom")

    errors: list[BaseException] = []
    bus._background.on("error", errors.append)  # a second "error" listener, beside the logger
    bus.subscribe_idempotent(Pinged, "test.bus.slow", slow)
    bus.subscribe_idempotent(Pinged, "test.bus.broken", broken)
    event = Pinged(key=uuid.uuid4().hex)
    async with bus.uow() as tx:
        tx.publish(event)
    # The unit of work returned while the listener still waits: the caller did not pay for it.
    await asyncio.wait_for(started.wait(), 5)
    assert seen == []
    release.set()
    await bus.drain()
    assert seen == [event.key]
    assert len(errors) == 1 and "boom" in repr(errors[0])
    row = await outbox_row(db, event.event_id)
    assert row.dispatched_at is None and "test.bus.broken" in row.last_error  # the relay retries it


async def test_on_commit_runs_after_commit_only(db: Database) -> None:
    bus = EventBus(db)
    ran: list[str] = []

    async def note(what: str) -> None:
        ran.append(what)

    async with bus.uow() as tx:
        tx.on_commit(lambda: note("committed"))
        assert ran == []
    with pytest.raises(RuntimeError):
        async with bus.uow() as tx:
            tx.on_commit(lambda: note("rolled back"))
            raise RuntimeError("no")
    assert ran == ["committed"]


async def test_a_nested_publish_is_queued_not_recursed(db: Database) -> None:
    bus = EventBus(db)
    depth: list[int] = []

    async def relay_ping(tx: UnitOfWork, event: Pinged) -> None:
        tx.publish(Ponged(key=event.key))

    async def record_pong(tx: UnitOfWork, event: Ponged) -> None:
        depth.append(len([t for t in asyncio.all_tasks() if t.get_name() == "bus-dispatch"]))
        await recorder("pong")(tx, event)

    bus.subscribe(Pinged, "test.bus.relay_ping", relay_ping)
    bus.subscribe(Ponged, "test.bus.record_pong", record_pong)
    event = Pinged(key=uuid.uuid4().hex)
    async with bus.uow() as tx:
        tx.publish(event)
    await bus.drain()
    assert await effects(db, event.key) == {"pong": 1}
    assert depth and depth[0] <= 4  # bounded by the dispatcher's tasks


async def test_an_event_without_background_listeners_is_still_marked_delivered(db: Database) -> None:
    bus = EventBus(db)
    heard: list[str] = []

    async def inline(event: Ponged) -> None:
        heard.append(event.key)

    bus.subscribe_idempotent(Ponged, "test.bus.inline_only", inline, inline=True)
    quiet, lonely = Ponged(key=uuid.uuid4().hex), Pinged(key=uuid.uuid4().hex)  # Pinged: no listener here
    async with bus.uow() as tx:
        tx.publish(quiet)
        tx.publish(lonely)
    assert heard == [quiet.key]  # inline: ran before the unit of work returned
    await bus.drain()
    for event in (quiet, lonely):
        row = await outbox_row(db, event.event_id)
        assert row.dispatched_at is not None and row.attempts == 1


class RecordingTasks(TaskQueue):
    """A task queue that keeps what it was given (or fails like an unreachable Redis)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.down = False

    def enqueue(self, spec: TaskSpec, *, delay_ms: int | None = None, **kwargs: Any) -> None:
        if self.down:
            raise ConnectionError("redis is down")
        self.sent.append((spec.name, spec.queue, kwargs))


async def test_worker_listeners_are_enqueued_with_ids_and_run_one_by_name(db: Database) -> None:
    tasks = RecordingTasks()
    bus = EventBus(db, tasks=tasks)
    bus.subscribe(Pinged, "test.bus.worker_heavy", recorder("heavy"), worker=True)
    bus.subscribe(Pinged, "test.bus.worker_other", recorder("other"), worker=True)
    bus.subscribe(Pinged, "test.bus.here", recorder("here"))
    assert bus.listener_names(Pinged.name) == ["test.bus.here"]
    assert bus.listener_names(Pinged.name, worker=True) == ["test.bus.worker_heavy", "test.bus.worker_other"]
    with pytest.raises(ValueError, match="both inline and worker"):
        bus.subscribe(Ponged, "test.bus.confused", recorder("x"), inline=True, worker=True)

    event = Pinged(key=uuid.uuid4().hex)
    async with bus.uow() as tx:
        tx.publish(event)
    await bus.drain()
    # Only the in-process listener ran here; the enqueues count as the others' delivery.
    assert await effects(db, event.key) == {"here": 1}
    assert tasks.sent == [
        (WORKER_LISTENER_TASK.name, "events", {"event_id": str(event.event_id), "listener": name})
        for name in ("test.bus.worker_heavy", "test.bus.worker_other")]
    assert (await outbox_row(db, event.event_id)).dispatched_at is not None

    # The worker side: exactly the named listener, from the outbox row, once per event.
    for _ in range(2):
        await bus.run_worker_listener(event.event_id, "test.bus.worker_heavy")
    assert await effects(db, event.key) == {"here": 1, "heavy": 1}
    with pytest.raises(LookupError):
        await bus.run_worker_listener(event.event_id, "test.bus.here")  # not a worker listener


async def test_a_failed_enqueue_is_a_failed_delivery_the_relay_retries(db: Database) -> None:
    tasks = RecordingTasks()
    bus = EventBus(db, tasks=tasks, backoff_base=0.01)
    bus.subscribe(Ponged, "test.bus.worker_enqueued", recorder("worker"), worker=True)
    tasks.down = True
    event = Ponged(key=uuid.uuid4().hex)
    async with bus.uow() as tx:
        tx.publish(event)
    await bus.drain()
    row = await outbox_row(db, event.event_id)
    assert row.dispatched_at is None and "enqueue failed" in row.last_error and tasks.sent == []

    tasks.down = False
    await asyncio.sleep(0.05)  # past the (shrunk) backoff
    assert await OutboxRelay(db, bus, grace=NO_GRACE).run_once() == 1
    assert (await outbox_row(db, event.event_id)).dispatched_at is not None
    assert [kwargs["listener"] for _, _, kwargs in tasks.sent] == ["test.bus.worker_enqueued"]


async def test_a_batch_listener_gets_the_events_taken_together_and_a_failure_fails_them_all(db: Database) -> None:
    bus = EventBus(db)
    batches: list[list[str]] = []
    fail = True

    async def handle(events: list[Pinged]) -> None:
        batches.append([e.key for e in events])
        if fail:
            raise RuntimeError("redis away")

    bus.subscribe_batch(Pinged, "test.bus.batch", handle)
    assert "test.bus.batch" in bus.listener_names(Pinged.name)
    events = [Pinged(key=uuid.uuid4().hex) for _ in range(3)]
    async with bus.uow() as tx:
        for event in events:
            tx.publish(event)
    await bus.drain()
    assert batches == [[e.key for e in events]]  # one call for the three
    for event in events:  # all three failed: the relay delivers each again
        row = await outbox_row(db, event.event_id)
        assert row.dispatched_at is None and "test.bus.batch" in row.last_error
    fail = False
    await write_without_dispatch(db, lonely := Pinged(key=uuid.uuid4().hex))
    errors = await bus.deliver(lonely)  # the relay's path: one event
    assert errors == [] and batches[-1] == [lonely.key]
