"""Graceful overload (issue 8): past its in-flight limit a process refuses at once — `overloaded`
acks with a retry hint on sockets, 503 problems with Retry-After over HTTP — and what it accepted
is delivered exactly once; health stays served."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.harness import ApiProcess
from tests.e2e.messaging_support import call, device, h, history, open_direct, users

# Two pieces of work at a time: a burst is bound to find the process full.
TINY = {"ADMISSION_MAX_IN_FLIGHT": "2"}
BURST = 40


@pytest.fixture(scope="module")
def tiny(app_env: dict[str, str], migrated_db: str) -> Iterator[ApiProcess]:
    """An API process taking two pieces of work at a time (same database and Redis as the suite's)."""
    with ApiProcess.serving({**app_env, **TINY}) as process:
        yield process


@pytest.fixture
async def client(tiny: ApiProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with tiny.client() as c:
        yield c


def _message(payload: Any) -> dict[str, Any]:
    return dict(payload.get("message", payload))


async def test_a_socket_burst_is_partly_refused_and_every_accepted_message_arrives_once(
        http: httpx.AsyncClient, tiny: ApiProcess) -> None:
    alice, bob = await users(http, 2)
    conversation_id = (await open_direct(http, alice, bob))["id"]
    async with device(tiny.base_url, alice) as (sender, _), device(tiny.base_url, bob) as (_, received):
        acks = await asyncio.gather(*(call(sender, "message:send", {
            "conversation_id": conversation_id, "client_msg_id": f"burst-{i}", "body": f"m{i}"})
            for i in range(BURST)))
        accepted = {a["data"]["id"] for a in acks if a["ok"]}
        refused = [a["error"] for a in acks if not a["ok"]]
        assert accepted and refused, acks
        assert all(e["code"] == "overloaded" and e["retry_after"] >= 1 for e in refused), refused
        # The client retries what was refused, one at a time, as the hint says: all taken.
        for i, ack in enumerate(acks):
            if not ack["ok"]:
                retried = await call(sender, "message:send", {
                    "conversation_id": conversation_id, "client_msg_id": f"burst-{i}", "body": f"m{i}"})
                assert retried["ok"], retried
                accepted.add(retried["data"]["id"])
        await received.wait_for("message:new", lambda _: accepted <= {
            _message(p)["id"] for p in received.events["message:new"]}, timeout=15)
    delivered = [_message(p)["id"] for p in received.events["message:new"]]
    assert sorted(delivered) == sorted(accepted)  # each once, nothing refused delivered
    stored = await history(http, alice, conversation_id)
    assert sorted(m["id"] for m in stored) == sorted(accepted)
    assert {m["client_msg_id"] for m in stored} == {f"burst-{i}" for i in range(BURST)}


async def test_an_http_burst_is_partly_refused_with_retry_after_and_health_is_served(
        http: httpx.AsyncClient, client: httpx.AsyncClient, tiny: ApiProcess) -> None:
    alice, bob = await users(http, 2)
    conversation_id = (await open_direct(http, alice, bob))["id"]
    url = f"/conversations/{conversation_id}/messages"

    async def post(i: int) -> httpx.Response:
        return await client.post(url, json={"client_msg_id": f"rest-{i}-{uuid.uuid4().hex[:6]}", "body": "hi"},
                                 headers=h(alice))

    async with httpx.AsyncClient(base_url=tiny.base_url, timeout=30) as ops:
        responses, health = await asyncio.gather(
            asyncio.gather(*(post(i) for i in range(BURST))),
            asyncio.gather(*(ops.get("/health/live") for _ in range(5))))
    assert all(r.status_code == 200 for r in health)
    assert {r.status_code for r in responses} == {201, 503}, [r.status_code for r in responses]
    for refused in (r for r in responses if r.status_code == 503):
        body = refused.json()
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert body["code"] == "overloaded" and body["status"] == 503
        assert int(refused.headers["retry-after"]) >= 1
    accepted = sorted(r.json()["id"] for r in responses if r.status_code == 201)
    assert sorted(m["id"] for m in await history(http, alice, conversation_id)) == accepted
