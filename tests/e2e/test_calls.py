"""Calls: the state machine as users see it, across two API processes, timers fired by the worker."""
# ruff: noqa: F811 (the call_apis fixture is imported)

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import timedelta

import asyncpg
import httpx

from src.common.clock import utcnow
from src.common.events.users import UserDeleted
from src.infra.context import AppContext
from src.modules.calls import state
from src.modules.calls.service import CallService
from src.modules.calls.state import CallState, Participant
from tests.e2e.calls_support import (
    CALL_ENV,
    Device,
    answered_call,
    call_apis,  # noqa: F401 (fixture)
    close,
    device,
    users,
)
from tests.e2e.harness import ApiProcess, WorkerProcess, deliver_everywhere

Apis = tuple[ApiProcess, ApiProcess]
OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"}


async def _history(http: httpx.AsyncClient, device: Device, call_id: str) -> dict:
    for _ in range(100):  # archived right after the transition that ended it
        response = await http.get(f"/calls/{call_id}", headers=device.user.headers)
        assert response.status_code == 200, response.text
        if response.json()["status"] == "ended":
            listed = await http.get("/calls", headers=device.user.headers)
            if call_id in [c["id"] for c in listed.json()["items"]]:
                return dict(response.json())
        await asyncio.sleep(0.05)
    raise AssertionError("the call never reached history")


async def test_answered_on_one_device_stops_ringing_on_the_other_and_signals_reach_only_it(
        http: httpx.AsyncClient, call_apis: Apis, worker: WorkerProcess) -> None:
    one, two = call_apis
    a_user, b_user, stranger = await users(http, 3)
    caller, phone = await device(one, a_user), await device(one, b_user)
    laptop = await device(two, b_user, new_session=True)
    try:
        call_id = str((await caller.ok("call:invite", {"user_id": b_user.id, "media": "video"}))["call_id"])
        for d in (phone, laptop):
            incoming = await d.events.wait_for("call:incoming", lambda c: c["id"] == call_id)
            assert incoming["caller_id"] == a_user.id and incoming["media"] == "video"
        accepted = await laptop.ok("call:accept", {"call_id": call_id})
        assert accepted["status"] == "accepted"
        accepted_event = await caller.events.wait_for("call:accepted", lambda e: e["call_id"] == call_id)
        assert accepted_event["user_id"] == b_user.id
        assert await phone.wait_ended(call_id) == "answered_elsewhere"
        assert await phone.error("call:accept", {"call_id": call_id}) == "already_answered"

        # Signaling goes to the device that answered, on the other process, and nowhere else.
        await caller.ok("call:signal", {"call_id": call_id, "to_user_id": b_user.id, "kind": "offer",
                                        "payload": OFFER})
        relayed = await laptop.events.wait_for("call:signal", lambda e: e["call_id"] == call_id)
        assert relayed == {"call_id": call_id, "from_user_id": a_user.id, "kind": "offer", "payload": OFFER}
        assert await phone.error("call:signal", {"call_id": call_id, "to_user_id": a_user.id, "kind": "ice",
                                                 "payload": {"candidate": ""}}) == "not_joined"
        await caller.ok("call:end", {"call_id": call_id})
        assert await laptop.wait_ended(call_id) == "completed"
        # The phone hears the end too (B's devices all do): by then a misrouted signal would be there.
        await phone.events.wait_for("call:ended", lambda e: e["call_id"] == call_id and e["reason"] == "completed")
        assert phone.got("call:signal", call_id) == []
        assert laptop.got("call:ended", call_id) == [{"call_id": call_id, "reason": "completed"}]

        record = await _history(http, caller, call_id)
        assert record["end_reason"] == "completed" and record["kind"] == "direct"
        assert [(p["user_id"], p["state"]) for p in record["participants"]] == [(a_user.id, "left"),
                                                                                 (b_user.id, "left")]
        assert record["answered_at"] and record["duration_s"] is not None
        assert (await http.get(f"/calls/{call_id}", headers=stranger.headers)).status_code == 404
        assert (await http.get(f"/calls/{uuid.uuid4()}", headers=a_user.headers)).status_code == 404
    finally:
        await close(caller, phone, laptop)


async def test_two_devices_accepting_at_once_one_wins(http: httpx.AsyncClient, call_apis: Apis) -> None:
    one, two = call_apis
    a_user, b_user = await users(http, 2)
    caller, d1 = await device(one, a_user), await device(one, b_user)
    d2 = await device(two, b_user, new_session=True)
    try:
        for _ in range(3):
            call_id = str((await caller.ok("call:invite", {"user_id": b_user.id, "media": "audio"}))["call_id"])
            for d in (d1, d2):
                await d.events.wait_for("call:incoming", lambda c, i=call_id: c["id"] == i)
            acks = await asyncio.gather(d1.call("call:accept", {"call_id": call_id}),
                                        d2.call("call:accept", {"call_id": call_id}))
            assert sorted(a["ok"] for a in acks) == [False, True], acks
            assert next(a for a in acks if not a["ok"])["error"]["code"] == "already_answered"
            await caller.ok("call:end", {"call_id": call_id})
            reasons = sorted([await d1.wait_ended(call_id), await d2.wait_ended(call_id)])
            assert reasons == ["answered_elsewhere", "completed"]
    finally:
        await close(caller, d1, d2)


async def test_reject_cancel_and_busy(http: httpx.AsyncClient, call_apis: Apis, db: asyncpg.Connection) -> None:
    one, two = call_apis
    a_user, b_user, c_user = await users(http, 3)
    a, b, c = await device(one, a_user), await device(two, b_user), await device(one, c_user)
    try:
        rejected = str((await a.ok("call:invite", {"user_id": b_user.id, "media": "audio"}))["call_id"])
        await b.events.wait_for("call:incoming", lambda x: x["id"] == rejected)
        await b.ok("call:reject", {"call_id": rejected})
        assert (await a.events.wait_for("call:rejected", lambda e: e["call_id"] == rejected))["user_id"] == b_user.id
        assert await a.wait_ended(rejected) == "rejected"
        assert (await _history(http, b, rejected))["end_reason"] == "rejected"

        cancelled = str((await a.ok("call:invite", {"user_id": b_user.id, "media": "audio"}))["call_id"])
        await b.events.wait_for("call:incoming", lambda x: x["id"] == cancelled)
        assert await b.error("call:cancel", {"call_id": cancelled}) == "not_caller"
        await a.ok("call:cancel", {"call_id": cancelled})
        assert await b.wait_ended(cancelled) == "cancelled"
        record = await _history(http, b, cancelled)
        assert record["end_reason"] == "cancelled" and record["participants"][1]["state"] == "missed"
        assert await b.error("call:accept", {"call_id": cancelled}) == "call_ended"

        # B and C are in a call: A calling B hears busy, and B's devices do not ring.
        in_call = await answered_call(b, c)
        busy = await a.ok("call:invite", {"user_id": b_user.id, "media": "audio"})
        assert busy["status"] == "ended" and busy["end_reason"] == "busy"
        assert await a.wait_ended(str(busy["call_id"])) == "busy"
        await c.ok("call:signal", {"call_id": in_call, "to_user_id": b_user.id, "kind": "ice",
                                   "payload": {"candidate": "", "sdpMid": "0"}})
        await b.events.wait_for("call:signal", lambda e: e["call_id"] == in_call)
        assert [x for x in b.events.events["call:incoming"] if x["id"] == str(busy["call_id"])] == []
        # The caller of a live call cannot place another one.
        assert await b.error("call:invite", {"user_id": a_user.id, "media": "audio"}) == "already_in_call"

        row = await db.fetchrow("SELECT payload FROM infra.outbox WHERE name = 'calls.call_ended.v1' "
                                "AND payload->>'call_id' = $1", str(busy["call_id"]))
        event = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
        assert event["end_reason"] == "busy" and event["caller_id"] == a_user.id
    finally:
        await close(a, b, c)


async def test_unanswered_call_is_missed_even_when_the_inviting_process_dies(
        http: httpx.AsyncClient, call_apis: Apis, worker: WorkerProcess, app_env: dict[str, str],
        migrated_db: str, db: asyncpg.Connection) -> None:
    one, _ = call_apis
    doomed = ApiProcess({**app_env, **CALL_ENV, "RUN_OUTBOX_RELAY": "false"}).start()
    a_user, b_user, c_user = await users(http, 3)
    a, b = await device(doomed, a_user), await device(one, b_user)
    c_caller, c_callee = await device(one, c_user), await device(one, a_user)
    try:
        call_id = str((await a.ok("call:invite", {"user_id": b_user.id, "media": "audio"}))["call_id"])
        await b.events.wait_for("call:incoming", lambda x: x["id"] == call_id)
        doomed.kill()  # the process that took the invite is gone; the worker's timer still fires
        assert await b.wait_ended(call_id, timeout=20) == "missed"
        record = await _history(http, b, call_id)
        assert record["end_reason"] == "missed"
        assert [p["state"] for p in record["participants"]] == ["left", "missed"]
        row = await db.fetchrow("SELECT payload FROM infra.outbox WHERE name = 'calls.call_ended.v1' "
                                "AND payload->>'call_id' = $1", call_id)
        event = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
        assert event["missed_ids"] == [b_user.id]

        # An ordinary missed call, timed from a live process, on the caller's side too.
        missed = str((await c_caller.ok("call:invite", {"user_id": a_user.id, "media": "video"}))["call_id"])
        await c_callee.events.wait_for("call:incoming", lambda x: x["id"] == missed)
        assert await c_caller.wait_ended(missed, timeout=20) == "missed"
        assert await c_callee.wait_ended(missed) == "missed"
    finally:
        await close(a, b, c_caller, c_callee)
        doomed.stop()


async def test_dropped_socket_resumes_on_another_process_within_the_grace_then_fails_past_it(
        http: httpx.AsyncClient, call_apis: Apis, worker: WorkerProcess) -> None:
    one, two = call_apis
    a_user, b_user = await users(http, 2)
    a, b = await device(one, a_user), await device(one, b_user)
    a2 = a3 = None
    try:
        call_id = await answered_call(a, b)
        await a.socket.disconnect()
        a2 = await device(two, a_user)
        resumed = await a2.ok("call:accept", {"call_id": call_id})
        assert resumed["status"] == "accepted"
        assert (await b.events.wait_for("call:accepted", lambda e: e.get("resumed")))["user_id"] == a_user.id
        await b.ok("call:signal", {"call_id": call_id, "to_user_id": a_user.id, "kind": "offer", "payload": OFFER})
        await a2.events.wait_for("call:signal", lambda e: e["call_id"] == call_id)

        await a2.socket.disconnect()  # and this time the caller does not come back
        assert await b.wait_ended(call_id, timeout=20) == "failed"
        a3 = await device(two, a_user)
        assert await a3.error("call:accept", {"call_id": call_id}) == "call_ended"
        record = await _history(http, b, call_id)
        assert [p["state"] for p in record["participants"]] == ["failed", "left"]
    finally:
        await close(a, b, *(d for d in (a2, a3) if d))


async def test_signals_from_outside_the_call_are_refused_and_relayed_nowhere(
        http: httpx.AsyncClient, call_apis: Apis) -> None:
    one, two = call_apis
    a_user, b_user, c_user = await users(http, 3)
    a, b, c = await device(one, a_user), await device(two, b_user), await device(one, c_user)
    try:
        call_id = await answered_call(a, b)
        signal = {"call_id": call_id, "to_user_id": b_user.id, "kind": "offer", "payload": OFFER}
        assert await c.error("call:signal", signal) == "call_not_found"
        assert await c.error("call:accept", {"call_id": call_id}) == "call_not_found"
        too_big = {**signal, "payload": {"type": "offer", "sdp": "a" * (16 * 1024 + 1)}}
        assert await a.error("call:signal", too_big) == "validation_failed"
        assert await a.error("call:signal", {**signal, "payload": {"type": "offer", "sdp": "x", "evil": 1}}) \
            == "validation_failed"
        assert await a.error("call:signal", {**signal, "to_user_id": c_user.id}) == "participant_not_found"
        marker = {**signal, "kind": "ice", "payload": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host",
                                                        "sdpMid": "0", "sdpMLineIndex": 0}}
        await a.ok("call:signal", marker)
        got = await b.events.wait_for("call:signal", lambda e: e["call_id"] == call_id)
        assert got["kind"] == "ice" and b.got("call:signal", call_id) == [got]
        assert c.got("call:signal", call_id) == []
        await a.ok("call:end", {"call_id": call_id})
    finally:
        await close(a, b, c)


async def test_privacy_and_blocks(http: httpx.AsyncClient, call_apis: Apis) -> None:
    one, two = call_apis
    a_user, b_user, c_user = await users(http, 3)
    a, b, c = await device(one, a_user), await device(two, b_user), await device(one, c_user)
    try:
        response = await http.patch("/privacy/settings", json={"who_can_call": "nobody"}, headers=c_user.headers)
        assert response.status_code == 200, response.text
        assert await a.error("call:invite", {"user_id": c_user.id, "media": "audio"}) == "not_allowed"
        assert await a.error("call:invite", {"user_id": a_user.id, "media": "audio"}) == "cannot_call_self"
        assert await a.error("call:invite", {"media": "audio"}) == "validation_failed"

        call_id = await answered_call(a, b)
        response = await http.put(f"/users/{a_user.id}/block", headers=b_user.headers)
        assert response.status_code == 200, response.text
        assert await a.wait_ended(call_id) == "completed"
        assert await a.error("call:invite", {"user_id": b_user.id, "media": "audio"}) == "blocked"
    finally:
        await close(a, b, c)


async def test_group_call_rings_the_members_of_a_group(http: httpx.AsyncClient, call_apis: Apis) -> None:
    one, two = call_apis
    a_user, b_user, c_user, d_user = await users(http, 4)
    response = await http.post("/groups", json={"name": "team", "member_ids": [b_user.id, c_user.id, d_user.id]},
                               headers=a_user.headers)
    assert response.status_code == 201, response.text
    group_id = response.json()["id"]
    a, b, c, d = (await device(one, a_user), await device(two, b_user), await device(one, c_user),
                  await device(two, d_user))
    try:
        outsider = (await users(http, 1))[0]
        o = await device(one, outsider)
        assert await o.error("call:invite", {"conversation_id": group_id, "media": "audio"}) == \
            "conversation_not_found"
        await close(o)
        call_id = str((await a.ok("call:invite", {"conversation_id": group_id, "media": "video"}))["call_id"])
        for callee in (b, c, d):
            incoming = await callee.events.wait_for("call:incoming", lambda x: x["id"] == call_id)
            assert incoming["kind"] == "group" and incoming["conversation_id"] == group_id
        await b.ok("call:accept", {"call_id": call_id})
        await c.ok("call:reject", {"call_id": call_id})
        assert (await a.events.wait_for("call:rejected", lambda e: e["call_id"] == call_id))["user_id"] == c_user.id
        await d.ok("call:accept", {"call_id": call_id})
        # Mesh: B and D signal each other directly.
        await b.ok("call:signal", {"call_id": call_id, "to_user_id": d_user.id, "kind": "offer", "payload": OFFER})
        await d.events.wait_for("call:signal", lambda e: e["from_user_id"] == b_user.id)
        await a.ok("call:end", {"call_id": call_id})  # two remain: the call goes on
        await b.ok("call:end", {"call_id": call_id})
        assert await d.wait_ended(call_id) == "completed"
        record = await _history(http, d, call_id)
        assert [p["state"] for p in record["participants"]] == ["left", "left", "rejected", "left"]
    finally:
        await close(a, b, c, d)


async def test_group_calls_are_capped(http: httpx.AsyncClient, call_apis: Apis) -> None:
    one, _ = call_apis
    owner, *others = await users(http, 9)
    response = await http.post("/groups", json={"name": "big", "member_ids": [u.id for u in others]},
                               headers=owner.headers)
    assert response.status_code == 201, response.text
    a = await device(one, owner)
    try:
        assert await a.error("call:invite", {"conversation_id": response.json()["id"], "media": "audio"}) == \
            "too_many_participants"
    finally:
        await close(a)


async def test_archive_sweep_writes_lost_calls_once_and_account_deletion_forgets_history(
        ctx: AppContext, db: asyncpg.Connection, worker: WorkerProcess) -> None:
    service = CallService(ctx)
    a, b = uuid.uuid4(), uuid.uuid4()
    began = utcnow() - timedelta(minutes=5)
    call = CallState(id=uuid.uuid4(), kind="direct", media="audio", conversation_id=None, caller_id=a,
                     status="ringing", created_at=began, ring_deadline=began + timedelta(seconds=45),
                     participants=[Participant(user_id=a, state="joined", sid="x", joined_at=began),
                                   Participant(user_id=b, state="ringing")])
    state.end(call, "missed", began + timedelta(seconds=45))
    await service.store.create(call, lambda c, busy: None)  # ended, as if the process died before archiving
    assert await service.archive_leftovers() >= 1
    assert await db.fetchval("SELECT count(*) FROM calls.calls WHERE id = $1", call.id) == 1
    assert await db.fetchval("SELECT count(*) FROM infra.outbox WHERE name = 'calls.call_ended.v1' "
                             "AND payload->>'call_id' = $1", str(call.id)) == 1
    assert not await service.history.archive(call)  # written once

    for _ in range(2):  # delivered twice, one effect
        # The cleanup is a worker listener: delivered through the worker, from the outbox row.
        await deliver_everywhere(ctx, db, UserDeleted(user_id=a, event_id=uuid.UUID(int=call.id.int ^ 1)))
    assert await db.fetchval("SELECT count(*) FROM calls.participants WHERE call_id = $1", call.id) == 1
    await deliver_everywhere(ctx, db, UserDeleted(user_id=b))
    assert await db.fetchval("SELECT count(*) FROM calls.calls WHERE id = $1", call.id) == 0


async def test_a_participant_whose_api_process_was_killed_resumes_elsewhere(
        http: httpx.AsyncClient, call_apis: Apis, app_env: dict[str, str], migrated_db: str) -> None:
    one, two = call_apis
    doomed = ApiProcess({**app_env, **CALL_ENV, "RUN_OUTBOX_RELAY": "false"}).start()
    a_user, b_user = await users(http, 2)
    a, b = await device(doomed, a_user), await device(one, b_user)
    a2 = None
    try:
        call_id = await answered_call(a, b)
        doomed.kill()  # no disconnect hook runs: only the process's expiring heartbeat tells
        a2 = await device(two, a_user, new_session=True)  # another device of the same user
        deadline = asyncio.get_running_loop().time() + 20
        while (ack := await a2.call("call:accept", {"call_id": call_id}))["ok"] is False:
            assert ack["error"]["code"] == "already_answered", ack
            assert asyncio.get_running_loop().time() < deadline, "never allowed to resume"
            await asyncio.sleep(0.5)
        assert (await b.events.wait_for("call:accepted", lambda e: e.get("resumed")))["user_id"] == a_user.id
        await b.ok("call:signal", {"call_id": call_id, "to_user_id": a_user.id, "kind": "offer", "payload": OFFER})
        await a2.events.wait_for("call:signal", lambda e: e["call_id"] == call_id)
        await a2.ok("call:end", {"call_id": call_id})
        assert await b.wait_ended(call_id) == "completed"
    finally:
        await close(b, *(d for d in (a2,) if d))
        doomed.stop()


async def test_signals_are_rate_limited_per_user(http: httpx.AsyncClient, app_env: dict[str, str],
                                                 api_factory: Callable[..., ApiProcess]) -> None:
    api = api_factory(**CALL_ENV, CALL_SIGNAL_LIMIT_PER_USER="3/minute", RUN_OUTBOX_RELAY="false")
    a_user, b_user = await users(http, 2)
    a, b = await device(api, a_user), await device(api, b_user)
    try:
        call_id = await answered_call(a, b)
        signal = {"call_id": call_id, "to_user_id": b_user.id, "kind": "ice",
                  "payload": {"candidate": "", "sdpMid": "0"}}
        for _ in range(3):
            await a.ok("call:signal", signal)
        assert await a.error("call:signal", signal) == "rate_limited"
        await b.ok("call:signal", {**signal, "to_user_id": a_user.id})  # per user: B still may
        await a.ok("call:end", {"call_id": call_id})
    finally:
        await close(a, b)
