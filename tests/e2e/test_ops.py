"""Operations: problem+json for every failure, health checks, metrics, and a Redis outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from src.infra.config import Settings
from src.infra.local_services import RedisServer
from src.socket.emitter import REVOKED_CHANNEL
from tests.e2e.harness import ApiProcess, SmtpSink, WorkerProcess, auth_headers, connect_socket, signup
from tests.e2e.test_auth import assert_problem, signin

DEFAULT_MAX_BODY_BYTES: int = Settings.model_fields["max_body_bytes"].default  # the suite keeps the default


@pytest.fixture(scope="module")
async def root(api: ApiProcess) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the API process root (health, metrics)."""
    async with httpx.AsyncClient(base_url=api.base_url, timeout=15) as client:
        yield client


# -- errors ----------------------------------------------------------------------------------


async def test_unknown_route_is_a_problem(http: httpx.AsyncClient, root: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/no/such/route"), 404, "route_not_found")
    assert_problem(await root.get("/nothing-here"), 404, "route_not_found")
    assert_problem(await http.post("/auth/no-such-action", json={}), 404, "route_not_found")


async def test_wrong_method_is_a_405(http: httpx.AsyncClient) -> None:
    response = await http.delete("/auth/signin")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers.get("allow", "")
    assert_problem(await http.put("/auth/signup", json={}), 405)


async def test_oversize_body_is_a_413(http: httpx.AsyncClient) -> None:
    body = b'{"login": "' + b"x" * (DEFAULT_MAX_BODY_BYTES + 1) + b'", "password": "p"}'
    response = await http.post("/auth/signin", content=body, headers={"content-type": "application/json"})
    assert_problem(response, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit still holds
        yield b'{"login": "'
        for _ in range(DEFAULT_MAX_BODY_BYTES // 65536 + 1):
            yield b"x" * 65536
        yield b'", "password": "p"}'

    chunked = await http.post("/auth/signin", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(chunked, 413, "payload_too_large")


@pytest.mark.parametrize("body", [b"{", b'{"login": "a", "password": }', b"\xff\xfe", b"null", b"[]", b""])
async def test_malformed_json_is_a_400(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post("/auth/signin", content=body, headers={"content-type": "application/json"})
    assert_problem(response, 400)


async def test_problem_details_carry_a_request_id(http: httpx.AsyncClient) -> None:
    response = await http.get("/users/me", headers={"X-Request-ID": "trace-me-123"})
    assert_problem(response, 401)
    assert response.headers["x-request-id"] == "trace-me-123"
    assert (await http.get("/users/me")).headers["x-request-id"]


# -- health and metrics ----------------------------------------------------------------------


async def test_health(root: httpx.AsyncClient) -> None:
    live = await root.get("/health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = await root.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_metrics(http: httpx.AsyncClient, root: httpx.AsyncClient, api: ApiProcess) -> None:
    account = await signup(http)
    assert (await http.get("/users/me", headers=auth_headers(account["access_token"]))).status_code == 200
    assert (await http.get(f"/users/{account['user']['id']}",
                           headers=auth_headers(account["access_token"]))).status_code == 200
    socket = await connect_socket(api.base_url, account["access_token"])
    try:
        assert (await root.get("/metrics")).status_code == 401  # not public
        response = await root.get("/metrics", headers=auth_headers("suite-metrics-token"))
    finally:
        await socket.disconnect()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()

    def samples(name: str) -> list[str]:
        return [line for line in lines if line.startswith(name) and not line.startswith("#")]

    latency = samples("chatty_request_duration_seconds_bucket")
    # By route template, not by raw path (one series per route, whatever the ids).
    assert any('path="/api/v1/users/me"' in line for line in latency), latency[:5]
    assert any('path="/api/v1/users/{user_id}"' in line for line in latency), latency[:5]
    assert not any(account["user"]["id"] in line for line in lines)
    assert samples("chatty_requests_total")
    def value(name: str) -> float:
        return float(samples(name)[0].split()[-1])

    assert value("chatty_outbox_backlog") >= 0
    assert value("chatty_outbox_dead_rows") >= 0
    assert value("chatty_socket_connections") >= 1


# -- Redis outage ----------------------------------------------------------------------------


async def _subscribers(redis_url: str) -> dict[str, int]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        return {str(channel): count for channel, count in await client.pubsub_numsub("socketio", REVOKED_CHANNEL)}
    finally:
        await client.aclose()


RECOVERY_SECONDS = 90


async def _wait_until_recovered(root: httpx.AsyncClient, redis_url: str, subscribers: dict[str, int]) -> None:
    """Ready again, and every process resubscribed (socket emits and revocations flow again)."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while time.monotonic() < deadline:
        try:
            ready = (await root.get("/health/ready")).status_code == 200
            now = await _subscribers(redis_url)
        except (httpx.HTTPError, OSError, aioredis.RedisError):
            ready, now = False, {}
        if ready and all(now.get(channel, 0) >= count for channel, count in subscribers.items()):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not recovered within {RECOVERY_SECONDS} s: {now} < {subscribers}")


async def test_redis_outage(http: httpx.AsyncClient, root: httpx.AsyncClient, redis_server: RedisServer,
                            redis_url: str, worker: WorkerProcess, smtp: SmtpSink) -> None:
    account = await signup(http)
    user, headers = account["user"], auth_headers(account["access_token"])
    spare = (await signin(http, user["username"], account["password"])).json()
    assert (await http.get("/users/me", headers=headers)).status_code == 200
    subscribers = await _subscribers(redis_url)
    try:
        redis_server.stop()
        ready = await root.get("/health/ready")
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"] == {"postgres": "ok", "redis": "down"}

        # Session checks fall back to PostgreSQL: signed-in requests keep working…
        started = time.monotonic()
        me = await http.get("/users/me", headers=headers)
        assert me.status_code == 200, me.text
        edit = await http.patch("/users/me", headers=headers, json={"quote": "still here"})
        assert edit.status_code == 200 and edit.json()["quote"] == "still here"
        assert time.monotonic() - started < 5
        # …signing in still works (the rate limits are skipped, argon2 still slows guessing)…
        assert (await signin(http, user["email"], account["password"])).status_code == 200
        # …a revoked session is still refused at once…
        assert (await http.post("/auth/signout", headers=auth_headers(spare["access_token"]))).status_code == 204
        assert_problem(await http.get("/users/me", headers=auth_headers(spare["access_token"])), 401)
        # …and bad tokens are still refused.
        assert_problem(await http.get("/users/me", headers=auth_headers("garbage")), 401)
    finally:
        redis_server.start()
        await _wait_until_recovered(root, redis_url, subscribers)

    ready = await root.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"
    assert (await http.get("/users/me", headers=headers)).status_code == 200
    assert_problem(await http.get("/users/me", headers=auth_headers(spare["access_token"])), 401)
    # The worker reconnected to the broker: background work flows again.
    assert (await http.post("/auth/forgot-password", json={"email": user["email"]})).status_code == 202
    await smtp.wait_for(lambda mail: user["email"] in mail.recipients, timeout=60)
    assert worker.running
