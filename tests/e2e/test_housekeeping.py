"""Periodic housekeeping: scheduled once per period across workers; old rows pruned, the rest kept."""

from __future__ import annotations

import uuid

import asyncpg
from redis import Redis

from src.infra.context import AppContext
from src.infra.housekeeping import prune_outbox, prune_outbox_task
from src.infra.periodic import PeriodicScheduler
from src.infra.tasks import TaskQueue, TaskSpec, create_broker
from src.modules.messaging.actors import prune_changes
from src.modules.messaging.sync import RETENTION_DAYS


async def test_a_periodic_task_is_enqueued_once_per_period_however_many_workers_offer(redis_url: str) -> None:
    spec = TaskSpec(name=f"test.periodic_{uuid.uuid4().hex[:8]}", queue="test-periodic",
                    fn=prune_outbox, every_seconds=60)
    broker = create_broker(redis_url)
    schedulers = [PeriodicScheduler(redis_url, TaskQueue(broker), [spec]) for _ in range(3)]
    assert [s.tick() for s in schedulers] == [[spec.name], [], []]
    queued = Redis.from_url(redis_url).llen("dramatiq:test-periodic")
    assert queued == 1
    Redis.from_url(redis_url).delete(f"periodic:{spec.name}")  # the period has passed
    assert schedulers[1].tick() == [spec.name]


async def test_outbox_housekeeping_drops_old_delivered_rows_and_keeps_the_rest(
        ctx: AppContext, db: asyncpg.Connection) -> None:
    assert prune_outbox_task.every_seconds
    rows = {kind: uuid.uuid4() for kind in ("old_done", "new_done", "old_dead", "old_pending")}
    for kind, event_id in rows.items():
        age = "now() - interval '30 days'" if kind.startswith("old") else "now()"
        dispatched = age if kind.endswith("done") else "NULL"
        dead = age if kind.endswith("dead") else "NULL"
        await db.execute(f"""INSERT INTO infra.outbox (event_id, name, payload, created_at, dispatched_at, dead_at)
                             VALUES ($1, 'test.housekeeping.v1', '{{}}', {age}, {dispatched}, {dead})""", event_id)
    await db.execute("INSERT INTO infra.inbox (listener, event_id, handled_at) "
                     "VALUES ('test.housekeeping', $1, now() - interval '30 days')", rows["old_done"])

    await prune_outbox(ctx)

    left = {r["event_id"] for r in await db.fetch("SELECT event_id FROM infra.outbox WHERE event_id = ANY($1)",
                                                  list(rows.values()))}
    assert left == {rows["new_done"], rows["old_dead"], rows["old_pending"]}
    assert await db.fetchval("SELECT count(*) FROM infra.inbox WHERE listener = 'test.housekeeping'") == 0
    await db.execute("DELETE FROM infra.outbox WHERE event_id = ANY($1)", list(rows.values()))


async def test_change_log_keeps_the_retention_period_and_drops_what_is_older(
        ctx: AppContext, db: asyncpg.Connection) -> None:
    user_id = uuid.uuid4()
    for position, age_days in ((1, RETENTION_DAYS + 5), (2, RETENTION_DAYS + 1), (3, 31), (4, 0)):
        await db.execute("INSERT INTO messaging.changes (user_id, position, type, payload, created_at) "
                         "VALUES ($1, $2, 'message:new', '{}', now() - make_interval(days => $3))",
                         user_id, position, age_days)
    await prune_changes(ctx, batch=1)  # several batches
    kept = [r["position"] for r in await db.fetch(
        "SELECT position FROM messaging.changes WHERE user_id = $1 ORDER BY position", user_id)]
    assert kept == [3, 4]  # a 31-day-old cursor still finds its changes
    await db.execute("DELETE FROM messaging.changes WHERE user_id = $1", user_id)
