"""The event system as the later modules will lean on it (issue 7): every stored message has its
durable event, listeners run off the request's path while the caller reads its own writes, big
cascades are batched, and a late listener still hears everything through the relay."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event as sa_event

from src.bootstrap import MODULES
from src.common.auth import Principal
from src.common.events import Event
from src.common.events.messaging import MessageCreated
from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.infra.outbox import OutboxRelay
from src.infra.uow import UnitOfWork
from src.modules.blocks.service import BlocksService
from src.modules.messaging.changes import Fanout, SyncStream
from src.modules.messaging.schemas import SendMessage
from src.modules.messaging.sending import SendService
from tests.e2e.harness import in_process_context, settled
from tests.e2e.messaging_support import h, ok, open_direct, send, uid, users


def late_listener(heard: Counter[uuid.UUID]) -> Module:
    """A test-only module that listens to MessageCreated (with the inbox, like any module)."""
    def build(ctx: AppContext) -> ModuleParts:
        async def remember(tx: UnitOfWork, event: MessageCreated) -> None:
            heard[event.message_id] += 1
        ctx.bus.subscribe(MessageCreated, "test.events.remember_messages", remember)
        return ModuleParts()
    return Module(name="late_listener", build=build)


@pytest.fixture
async def process(app_env: dict[str, str]) -> AsyncIterator[Any]:
    """Start in-process "API processes" (every module plus `extra`); closed after the test."""
    started: list[AppContext] = []

    def start(*extra: Module) -> AppContext:
        ctx = in_process_context(app_env, [*MODULES, *extra])
        started.append(ctx)
        return ctx

    yield start
    for ctx in started:
        await ctx.bus.drain()
        await ctx.redis.aclose()
        await ctx.db.dispose()


async def test_a_message_with_no_listener_still_has_exactly_one_outbox_row(
        http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    a, b = await users(http, 2)
    cid = (await open_direct(http, a, b))["id"]
    sent = [await send(http, a, cid, f"m{i}") for i in range(3)]
    for i, message in enumerate(sent, start=1):
        rows = await db.fetch("SELECT payload FROM infra.outbox WHERE name = $1 AND payload->>'message_id' = $2",
                              MessageCreated.name, message["id"])
        assert len(rows) == 1
        event = json.loads(rows[0]["payload"])
        assert (event["seq"], event["recipient_ids"], event["sender_id"], event["media_ids"]) == \
            (i, [uid(b)], uid(a), [])


async def test_a_late_listener_hears_every_message_through_the_relay_after_a_crash(
        http: httpx.AsyncClient, process: Any) -> None:
    a, b = await users(http, 2)
    cid = uuid.UUID((await open_direct(http, a, b))["id"])
    heard_before: Counter[uuid.UUID] = Counter()
    crashing = process(late_listener(heard_before))
    crashing.bus.fast_path_lease = timedelta(0)  # the relay may take the rows at once

    async def crash(events: list[Event]) -> None:  # committed, then the process dies
        return None

    crashing.bus.committed = crash  # type: ignore[method-assign]
    sender = SendService(crashing, Fanout(SyncStream(crashing.redis), crashing.realtime))
    ids = []
    for i in range(5):
        view, created = await sender.send(uuid.UUID(uid(a)), cid, SendMessage(client_msg_id=f"c{i}", body=f"b{i}"))
        assert created
        ids.append(view.id)
    assert heard_before == Counter()

    heard: Counter[uuid.UUID] = Counter()
    restarted = process(late_listener(heard))
    relay = OutboxRelay(restarted.db, restarted.bus, grace=timedelta(0))
    for _ in range(100):  # polls a positive signal: every message heard
        await relay.run_once()
        if all(heard[i] for i in ids):
            break
        await asyncio.sleep(0.05)
    assert {i: heard[i] for i in ids} == dict.fromkeys(ids, 1)


@contextmanager
def statements_of_this_task(ctx: AppContext) -> Iterator[Counter[str]]:
    """Count the statements and commits this asyncio task sends (not the background dispatch)."""
    counts: Counter[str] = Counter()
    me = asyncio.current_task()

    def on_statement(*_: Any) -> None:
        if asyncio.current_task() is me:
            counts["statements"] += 1

    def on_commit(*_: Any) -> None:
        if asyncio.current_task() is me:
            counts["commits"] += 1

    engine = ctx.db.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", on_statement)
    sa_event.listen(engine, "commit", on_commit)
    try:
        yield counts
    finally:
        sa_event.remove(engine, "before_cursor_execute", on_statement)
        sa_event.remove(engine, "commit", on_commit)


async def _big_graph(db: asyncpg.Connection, user_id: uuid.UUID, follows: int, friendships: int) -> None:
    await db.execute("INSERT INTO follows.follows (follower_id, followee_id) "
                     "SELECT gen_random_uuid(), $1 FROM generate_series(1, $2)", user_id, follows)
    await db.execute("INSERT INTO friendship.friendships (user_a, user_b, requester_id) "
                     "SELECT least(x, $1), greatest(x, $1), $1 "
                     "FROM (SELECT gen_random_uuid() AS x FROM generate_series(1, $2)) s", user_id, friendships)


async def test_a_block_in_a_big_graph_costs_the_caller_a_few_statements_and_the_cascade_completes(
        http: httpx.AsyncClient, db: asyncpg.Connection, process: Any) -> None:
    a, b = await users(http, 2)
    ida, idb = uuid.UUID(uid(a)), uuid.UUID(uid(b))
    ok(await http.put(f"/users/{uid(b)}/follow", headers=h(a)))
    ok(await http.put(f"/users/{uid(a)}/follow", headers=h(b)))
    ok(await http.post("/friends/requests", json={"user_id": uid(b)}, headers=h(a)), 201)
    ok(await http.post("/friends/requests", json={"user_id": uid(a)}, headers=h(b)))  # accepts theirs
    for user_id in (ida, idb):
        await _big_graph(db, user_id, follows=5000, friendships=200)
    await settled(db)
    assert ok(await http.get(f"/privacy/permissions/{uid(b)}", headers=h(a)))["can_message"] is True  # cached

    ctx = process()
    with statements_of_this_task(ctx) as counts:
        await BlocksService(ctx).block(Principal(user_id=ida, session_id=uuid.uuid4()), idb)
    # The caller's path: the target's profile, the block row, its outbox row; one commit
    # (its speed is bench/cascade.py's business).
    assert counts["commits"] == 1 and counts["statements"] <= 4, counts  # 3 today

    # The caller reads its own write at once, although the cascade runs in the background.
    assert [f["user"]["id"] for f in ok(await http.get("/friends", headers=h(a)))["items"]] == []
    followers = ok(await http.get(f"/users/{uid(a)}/followers", params={"limit": 100}, headers=h(a)))["items"]
    assert uid(b) not in [f["user"]["id"] for f in followers]
    permissions = ok(await http.get(f"/privacy/permissions/{uid(b)}", headers=h(a)))
    assert not any(permissions.values())

    await ctx.bus.drain()  # positive barrier: the cascade has run
    await settled(db)
    assert await db.fetchval("SELECT count(*) FROM follows.follows WHERE (follower_id = $1 AND followee_id = $2) "
                             "OR (follower_id = $2 AND followee_id = $1)", ida, idb) == 0
    assert await db.fetchval("SELECT count(*) FROM friendship.friendships WHERE user_a = least($1::uuid, $2::uuid) "
                             "AND user_b = greatest($1::uuid, $2::uuid)", ida, idb) == 0
    for user_id in (ida, idb):  # the rest of the graph is untouched
        assert await db.fetchval("SELECT count(*) FROM follows.follows WHERE followee_id = $1", user_id) == 5000
    # Every listener ran once: one inbox row per inbox listener and event, each event delivered once.
    events = await db.fetch("SELECT event_id, name, attempts, dispatched_at FROM infra.outbox "
                            "WHERE name IN ('blocks.user_blocked.v1', 'follows.follow_deleted.v1', "
                            "'friendship.deleted.v1') AND (payload->>'blocker_id' = $1 OR payload->>'follower_id' "
                            "IN ($1, $2) OR payload->>'user_a' IN ($1, $2))", uid(a), uid(b))
    assert Counter(e["name"] for e in events) == {"blocks.user_blocked.v1": 1, "follows.follow_deleted.v1": 2,
                                                  "friendship.deleted.v1": 1}
    assert all(e["dispatched_at"] is not None and e["attempts"] == 1 for e in events)
    inbox = Counter((r["listener"], r["event_id"]) for r in await db.fetch(
        "SELECT listener, event_id FROM infra.inbox WHERE event_id = ANY($1::uuid[])", [e["event_id"] for e in events]))
    expected = {"blocks.user_blocked.v1": ["follows.remove_follows_on_block", "friendship.remove_friendship_on_block"],
                "follows.follow_deleted.v1": ["users.count_follow_deleted"]}
    for e in events:
        for listener in expected.get(e["name"], []):
            assert inbox[(listener, e["event_id"])] == 1, (listener, e["name"])
    assert max(inbox.values()) == 1


async def test_deleting_a_user_with_10000_followers_hides_at_once_and_cleans_up_behind(
        http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    star, viewer = await users(http, 2)
    sid = uuid.UUID(uid(star))
    followers = await db.fetch(
        "INSERT INTO users.profiles (id, username, email, display_name, following_count) "
        "SELECT gen_random_uuid(), 'f' || substr(md5(random()::text), 1, 24), md5(random()::text) || '@x.io', 'f', 1 "
        "FROM generate_series(1, 10000) RETURNING id")
    await db.executemany("INSERT INTO follows.follows (follower_id, followee_id) VALUES ($1, $2)",
                         [(r["id"], sid) for r in followers])

    ok(await http.request("DELETE", "/users/me", json={"password": star["password"]}, headers=h(star)), 204)
    # Invisible at once, and its tokens are refused.
    assert (await http.get(f"/users/{uid(star)}", headers=h(viewer))).status_code == 404
    assert (await http.get("/users/me", headers=h(star))).status_code == 401

    await settled(db, within=60)
    assert await db.fetchval("SELECT count(*) FROM follows.follows WHERE followee_id = $1", sid) == 0
    assert await db.fetchval("SELECT sum(following_count) FROM users.profiles WHERE id = ANY($1::uuid[])",
                             [r["id"] for r in followers]) == 0
    assert await db.fetchval("SELECT count(*) FROM infra.outbox WHERE name = 'follows.user_follows_removed.v1' "
                             "AND payload->>'user_id' = $1", uid(star)) == 1
