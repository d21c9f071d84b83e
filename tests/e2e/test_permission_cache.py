"""The permission cache: hits, invalidation on every event, the compute/invalidate race, Redis outages."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from src.bootstrap import MODULES
from src.common.events.blocks import UserBlocked, UserUnblocked
from src.common.events.privacy import PrivacySettingsChanged
from src.common.queries.privacy import CanCall, CanMessage, Decision
from src.infra.context import AppContext
from src.infra.local_services import RedisServer
from src.modules.privacy.cache import PERMISSION_TTL, PermissionCache, perm_key
from src.modules.privacy.rules import ALLOWED
from tests.e2e.harness import ApiProcess, EventRecorder, auth_headers, connect_socket, in_process_context, signup

ALL_ALLOWED = {"can_message": True, "can_call": True, "can_view_profile": True}
ALL_DENIED = dict.fromkeys(ALL_ALLOWED, False)











def uid(user: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(user["user"]["id"])


def h(user: dict[str, Any]) -> dict[str, str]:
    return auth_headers(user["access_token"])


async def permissions(http: httpx.AsyncClient, actor: dict[str, Any], target: dict[str, Any]) -> dict[str, bool]:
    response = await http.get(f"/privacy/permissions/{uid(target)}", headers=h(actor))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def cached(ctx: AppContext, action: str, actor: dict[str, Any], target: dict[str, Any]) -> bool:
    return bool(await ctx.redis.exists(perm_key(action, uid(actor), uid(target))))  # type: ignore[arg-type]


async def test_cached_allow_is_denied_right_after_a_block(http: httpx.AsyncClient, ctx: AppContext) -> None:
    a, b = await signup(http), await signup(http)
    assert await permissions(http, a, b) == ALL_ALLOWED
    for action in ("message", "call", "profile"):
        assert await cached(ctx, action, a, b)
    assert 0 < await ctx.redis.ttl(perm_key("message", uid(a), uid(b))) <= PERMISSION_TTL
    assert await ctx.queries.ask(CanMessage(actor_id=uid(a), target_id=uid(b))) == ALLOWED

    assert (await http.put(f"/users/{uid(b)}/block", headers=h(a))).status_code == 200
    assert await permissions(http, a, b) == ALL_DENIED
    assert await permissions(http, b, a) == ALL_DENIED
    assert await ctx.queries.ask(CanMessage(actor_id=uid(b), target_id=uid(a))) == Decision(False, "blocked")

    assert (await http.delete(f"/users/{uid(b)}/block", headers=h(a))).status_code == 204
    assert await permissions(http, a, b) == ALL_ALLOWED


async def test_settings_change_shows_on_the_next_ask_for_every_asker(http: httpx.AsyncClient,
                                                                     ctx: AppContext) -> None:
    target, askers = await signup(http), [await signup(http) for _ in range(3)]
    for asker in askers:
        assert await permissions(http, asker, target) == ALL_ALLOWED
    response = await http.patch("/privacy/settings", json={"who_can_call": "nobody"}, headers=h(target))
    assert response.status_code == 200
    for asker in askers:
        assert await permissions(http, asker, target) == {**ALL_ALLOWED, "can_call": False}
        assert await ctx.queries.ask(CanCall(actor_id=uid(asker), target_id=uid(target))) == \
            Decision(False, "not_allowed")
    assert await permissions(http, target, askers[0]) == ALL_ALLOWED  # answers about others are intact


async def test_a_hit_reads_only_the_cache_and_listeners_twice_have_one_effect(
        http: httpx.AsyncClient, ctx: AppContext, db: asyncpg.Connection) -> None:
    a, b = await signup(http), await signup(http)
    assert await permissions(http, a, b) == ALL_ALLOWED
    # Rows written behind the services' backs (no event): a cached answer does not see them,
    # which shows that a hit consults neither PostgreSQL nor the other modules.
    await db.execute("INSERT INTO privacy.settings (user_id, who_can_message) VALUES ($1, 'nobody')", uid(b))
    assert await permissions(http, a, b) == ALL_ALLOWED

    changed = PrivacySettingsChanged(user_id=uid(b), changed=["who_can_message"])
    for _ in range(2):
        assert await ctx.bus.deliver(changed) == []
        assert await permissions(http, a, b) == {**ALL_ALLOWED, "can_message": False}
    assert await cached(ctx, "message", a, b)

    await db.execute("INSERT INTO blocks.blocks (blocker_id, blocked_id) VALUES ($1, $2)", uid(a), uid(b))
    assert await permissions(http, a, b) == {**ALL_ALLOWED, "can_message": False}  # still the cache
    blocked = UserBlocked(blocker_id=uid(a), blocked_id=uid(b))
    for _ in range(2):
        assert await ctx.bus.deliver(blocked) == []
        assert await permissions(http, a, b) == ALL_DENIED
        assert await permissions(http, b, a) == ALL_DENIED

    await db.execute("DELETE FROM blocks.blocks WHERE blocker_id = $1", uid(a))
    unblocked = UserUnblocked(blocker_id=uid(a), blocked_id=uid(b))
    for _ in range(2):
        assert await ctx.bus.deliver(unblocked) == []
        assert await permissions(http, a, b) == {**ALL_ALLOWED, "can_message": False}
        assert await permissions(http, b, a) == ALL_ALLOWED


async def test_an_answer_computed_before_a_block_is_never_served_after_it(
        http: httpx.AsyncClient, ctx: AppContext) -> None:
    a, b = await signup(http), await signup(http)
    cache = PermissionCache(ctx.redis)
    # A slow computation: it reads the versions, then PostgreSQL says "allowed" (no block yet) …
    seen = await cache.lookup(uid(a), uid(b), ("message", "call"))
    assert seen.hits == {}
    # … meanwhile the block commits and its listener invalidates the pair …
    assert (await http.put(f"/users/{uid(b)}/block", headers=h(a))).status_code == 200
    # … and only then is the stale "allowed" written.
    await cache.store(uid(a), uid(b), seen, {"message": ALLOWED, "call": ALLOWED})
    assert await cached(ctx, "message", a, b)
    assert (await cache.lookup(uid(a), uid(b), ("message", "call"))).hits == {}
    assert await ctx.queries.ask(CanMessage(actor_id=uid(a), target_id=uid(b))) == Decision(False, "blocked")
    assert await permissions(http, a, b) == ALL_DENIED

    # The same race against a settings change.
    c = await signup(http)
    seen = await cache.lookup(uid(c), uid(a), ("call",))
    response = await http.patch("/privacy/settings", json={"who_can_call": "nobody"}, headers=h(a))
    assert response.status_code == 200
    await cache.store(uid(c), uid(a), seen, {"call": ALLOWED})
    assert await ctx.queries.ask(CanCall(actor_id=uid(c), target_id=uid(a))) == Decision(False, "not_allowed")


async def test_an_answer_that_cannot_be_determined_is_denied_and_not_cached(
        http: httpx.AsyncClient, app_env: dict[str, str]) -> None:
    a, b = await signup(http), await signup(http)
    response = await http.patch("/privacy/settings", json={"who_can_message": "friends"}, headers=h(b))
    assert response.status_code == 200
    # A process wired without the friendship module cannot know whether they are friends.
    partial = in_process_context(app_env, [m for m in MODULES if m.name != "friendship"])
    try:
        query = CanMessage(actor_id=uid(a), target_id=uid(b))
        assert await partial.queries.ask(query) == Decision(False, "not_allowed")
        assert not await partial.redis.exists(perm_key("message", uid(a), uid(b)))
        assert await partial.queries.ask(CanCall(actor_id=uid(a), target_id=uid(b))) == ALLOWED
    finally:
        await partial.redis.aclose()
        await partial.db.dispose()


async def test_answers_stay_right_while_redis_is_down_and_caching_resumes(
        http: httpx.AsyncClient, ctx: AppContext, api: ApiProcess, redis_server: RedisServer) -> None:
    a, b, c = await signup(http), await signup(http), await signup(http)
    assert await permissions(http, a, b) == ALL_ALLOWED
    assert await cached(ctx, "message", a, b)

    redis_server.stop()
    try:
        assert await permissions(http, a, b) == ALL_ALLOWED
        response = await http.patch("/privacy/settings", json={"who_can_message": "nobody"}, headers=h(b))
        assert response.status_code == 200
        assert await permissions(http, a, b) == {**ALL_ALLOWED, "can_message": False}
        assert (await http.put(f"/users/{uid(c)}/block", headers=h(a))).status_code == 200
        assert await permissions(http, a, c) == ALL_DENIED
        assert await permissions(http, c, a) == ALL_DENIED
        assert (await http.get(f"/users/{uid(a)}", headers=h(c))).status_code == 404
        assert await ctx.queries.ask(CanMessage(actor_id=uid(c), target_id=uid(a))) == Decision(False, "blocked")
    finally:
        redis_server.start()

    assert await permissions(http, a, b) == {**ALL_ALLOWED, "can_message": False}
    assert await cached(ctx, "message", a, b)  # caching resumed
    assert await permissions(http, a, b) == {**ALL_ALLOWED, "can_message": False}
    assert await permissions(http, a, c) == ALL_DENIED
    assert await cached(ctx, "call", a, c)

    # Leave the API healthy for the next tests: its sockets hear events again once Socket.IO
    # re-subscribed to Redis (it retries with a growing backoff).
    recorder = EventRecorder()
    sock = await connect_socket(api.base_url, a["access_token"], recorder=recorder)
    try:
        for _ in range(40):
            await http.put(f"/users/{uid(b)}/block", headers=h(a))
            await http.delete(f"/users/{uid(b)}/block", headers=h(a))
            try:
                await recorder.wait_for("block:changed", timeout=0.5)
                break
            except TimeoutError:
                pass
        else:
            pytest.fail("the API's sockets did not hear events again after Redis restarted")
    finally:
        await sock.disconnect()
