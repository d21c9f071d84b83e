"""Worker listeners: heavy cascades run in a Dramatiq worker (queue `events`), not in the API.

The API process enqueues one task per (event, worker listener) carrying ids only; the worker
loads the event from the outbox, runs that one listener under its inbox claim, and Dramatiq
retries it when it fails.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import httpx

from src.common.events.follows import UserFollowsRemoved
from src.common.events.users import UserDeleted
from src.infra.bus import WORKER_LISTENER_TASK
from src.infra.context import AppContext
from tests.e2e.harness import WorkerProcess, new_user, settled

PASSWORD = "Correct-Horse-Battery-9"
FOLLOWS_CLEANUP = "follows.remove_follows_on_user_deleted"
COUNTS = "users.count_user_follows_removed"


async def until(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    """Poll `check` until it holds (a positive barrier), failing after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def followers_count(db: asyncpg.Connection, user_id: str) -> int:
    return int(await db.fetchval("SELECT followers_count FROM users.profiles WHERE id = $1", uuid.UUID(user_id)))


async def test_heavy_cascades_are_worker_listeners_not_in_process(ctx: AppContext) -> None:
    in_process = ctx.bus.listener_names(UserDeleted.name)
    delegated = ctx.bus.listener_names(UserDeleted.name, worker=True)
    for name in (FOLLOWS_CLEANUP, "friendship.remove_friendships_on_user_deleted",
                 "messaging.forget_user_on_user_deleted", "posts.remove_content_on_user_deleted",
                 "notifications.forget_deleted_user", "calls.forget_user_on_user_deleted"):
        assert name in delegated and name not in in_process
    assert "auth.remove_credentials_on_user_deleted" in in_process  # cheap, read next: stays here
    assert ctx.bus.listener_names(UserFollowsRemoved.name, worker=True) == [COUNTS]


async def test_deleting_a_user_with_10000_followers_leaves_the_cleanup_to_the_worker(
        http: httpx.AsyncClient, worker: WorkerProcess, db: asyncpg.Connection) -> None:
    star, idol = await new_user(http), await new_user(http)
    assert (await http.put(f"/users/{idol.id}/follow", headers=star.headers)).status_code == 200
    crowd = [uuid.uuid4() for _ in range(10_000)]  # followers written behind the API
    await db.copy_records_to_table("follows", schema_name="follows", columns=["follower_id", "followee_id"],
                                   records=[(u, uuid.UUID(star.id)) for u in crowd])

    deleted = await http.request("DELETE", "/users/me", headers=star.headers, json={"password": PASSWORD})
    assert deleted.status_code == 204, deleted.text
    assert (await http.get(f"/users/{star.id}", headers=idol.headers)).status_code == 404

    event_id = await db.fetchval("SELECT event_id FROM infra.outbox WHERE name = $1 AND payload->>'user_id' = $2",
                                 UserDeleted.name, star.id)
    inbox = "SELECT EXISTS (SELECT 1 FROM infra.inbox WHERE listener = $1 AND event_id = $2)"

    async def cleaned() -> bool:
        return bool(await db.fetchval(inbox, FOLLOWS_CLEANUP, event_id))

    await until(cleaned)
    assert await db.fetchval("SELECT count(*) FROM follows.follows WHERE followee_id = $1 OR follower_id = $1",
                             uuid.UUID(star.id)) == 0

    async def counted() -> bool:
        return await followers_count(db, idol.id) == 0

    await until(counted)  # the worker's own event (UserFollowsRemoved) ran in a worker too
    await settled(db)


async def _publish_follows_removed(ctx: AppContext, followee_id: str) -> UserFollowsRemoved:
    event = UserFollowsRemoved(user_id=uuid.uuid4(), follower_ids=[], followee_ids=[uuid.UUID(followee_id)])
    async with ctx.uow() as tx:
        tx.publish(event)
    return event


async def test_an_event_delivered_twice_to_a_worker_listener_has_one_effect(
        http: httpx.AsyncClient, worker: WorkerProcess, ctx: AppContext, db: asyncpg.Connection) -> None:
    star, fan, other = await new_user(http), await new_user(http), await new_user(http)
    for follower in (fan, other):
        assert (await http.put(f"/users/{star.id}/follow", headers=follower.headers)).status_code == 200
    assert await followers_count(db, star.id) == 2

    event = await _publish_follows_removed(ctx, star.id)  # delivered once by this process's dispatcher
    assert await ctx.bus.deliver(event) == []  # again: one more task
    ctx.tasks.enqueue(WORKER_LISTENER_TASK, event_id=str(event.event_id), listener=COUNTS)  # and a third
    await ctx.bus.drain()
    await settled(db)  # every task of the `events` queue ran
    assert await followers_count(db, star.id) == 1
    assert await db.fetchval("SELECT count(*) FROM infra.inbox WHERE listener = $1 AND event_id = $2",
                             COUNTS, event.event_id) == 1


async def test_a_failing_worker_listener_is_retried(
        http: httpx.AsyncClient, worker: WorkerProcess, ctx: AppContext, db: asyncpg.Connection) -> None:
    star, fan = await new_user(http), await new_user(http)
    assert (await http.put(f"/users/{star.id}/follow", headers=fan.headers)).status_code == 200
    # The listener's update of this profile fails until the trigger is dropped.
    trigger = f"i7b_fail_{uuid.uuid4().hex[:8]}"
    await db.execute(f"""
        CREATE FUNCTION public.{trigger}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected failure'; END $$;
        CREATE TRIGGER {trigger} BEFORE UPDATE ON users.profiles FOR EACH ROW
        WHEN (OLD.id = '{star.id}') EXECUTE FUNCTION public.{trigger}();""")
    try:
        event = await _publish_follows_removed(ctx, star.id)
        await ctx.bus.drain()
        # The enqueue was the delivery: the outbox row is dispatched although the listener fails.
        assert await db.fetchval("SELECT dispatched_at IS NOT NULL FROM infra.outbox WHERE event_id = $1",
                                 event.event_id)

        async def failed() -> bool:
            return "injected failure" in worker.log_path.read_text(errors="replace") \
                and str(event.event_id) in worker.log_path.read_text(errors="replace")

        await until(failed)
        assert await followers_count(db, star.id) == 1
    finally:
        await db.execute(f"DROP TRIGGER {trigger} ON users.profiles; DROP FUNCTION public.{trigger}();")

    async def counted() -> bool:
        return await followers_count(db, star.id) == 0

    await until(counted)  # a Dramatiq retry ran it
    assert await db.fetchval("SELECT count(*) FROM infra.inbox WHERE listener = $1 AND event_id = $2",
                             COUNTS, event.event_id) == 1
