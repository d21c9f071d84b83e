"""Helpers of the calls tests: two API processes with short call timers, devices, acked calls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import socketio

from tests.e2e.harness import DEFAULT_PASSWORD, ApiProcess, EventRecorder, User, connect_socket, new_user

RING_TIMEOUT = 6.0  # long enough for a loaded machine to answer in time
GRACE = 5.0
CALL_ENV = {"CALL_RING_TIMEOUT": str(RING_TIMEOUT), "CALL_RECONNECT_GRACE": str(GRACE)}


@pytest.fixture(scope="module")
def call_apis(app_env: dict[str, str], migrated_db: str) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    """Two API processes with short ring and reconnect timers (the worker fires the timers)."""
    first = ApiProcess({**app_env, **CALL_ENV}).start()
    second = ApiProcess({**app_env, **CALL_ENV, "RUN_OUTBOX_RELAY": "false"}).start()
    yield first, second
    first.stop()
    second.stop()


@dataclass
class Device:
    """One connected socket of a user, with the events it received."""

    user: User
    socket: socketio.AsyncClient
    events: EventRecorder = field(default_factory=EventRecorder)

    async def call(self, event: str, data: Any) -> dict[str, Any]:
        """Send a client event and return its ack."""
        ack: dict[str, Any] = await self.socket.call(event, data, timeout=10)
        return ack

    async def ok(self, event: str, data: Any) -> Any:
        """Send a client event that must succeed; its ack data."""
        ack = await self.call(event, data)
        assert ack["ok"] is True, ack
        return ack["data"]

    async def error(self, event: str, data: Any) -> str:
        """Send a client event that must fail; its error code."""
        ack = await self.call(event, data)
        assert ack["ok"] is False, ack
        return str(ack["error"]["code"])

    async def wait_ended(self, call_id: str, timeout: float = 10) -> str:  # noqa: ASYNC109
        """The reason of the `call:ended` this device gets for the call."""
        payload = await self.events.wait_for("call:ended", lambda e: e["call_id"] == call_id, timeout=timeout)
        return str(payload["reason"])

    def got(self, event: str, call_id: str) -> list[Any]:
        return [e for e in self.events.events.get(event, []) if e.get("call_id") == call_id]


async def device(api: ApiProcess, user: User, *, new_session: bool = False) -> Device:
    """A new socket of `user` on `api`: the user's first sign-in (one device reconnecting), or with
    `new_session` a sign-in of its own (another device of the same user)."""
    token = await _sign_in_again(api, user) if new_session else user.token
    recorder = EventRecorder()
    sock = await connect_socket(api.base_url, token, recorder=recorder)
    return Device(user, sock, recorder)


async def _sign_in_again(api: ApiProcess, user: User) -> str:
    async with httpx.AsyncClient(base_url=api.base_url + "/api/v1", timeout=15) as client:
        me = await client.get("/users/me", headers=user.headers)
        assert me.status_code == 200, me.text
        signed_in = await client.post("/auth/signin", json={"login": me.json()["username"],
                                                            "password": DEFAULT_PASSWORD})
        assert signed_in.status_code == 200, signed_in.text
        return str(signed_in.json()["access_token"])


async def users(http: httpx.AsyncClient, n: int) -> list[User]:
    return [await new_user(http) for _ in range(n)]


async def answered_call(caller: Device, callee: Device) -> str:
    """A 1:1 call from `caller` answered on `callee`; its id."""
    call_id = str((await caller.ok("call:invite", {"user_id": callee.user.id, "media": "audio"}))["call_id"])
    await callee.events.wait_for("call:incoming", lambda c: c["id"] == call_id)
    await callee.ok("call:accept", {"call_id": call_id})
    await caller.events.wait_for("call:accepted", lambda e: e["call_id"] == call_id)
    return call_id


async def close(*devices: Device) -> None:
    for d in devices:
        if d.socket.connected:
            await d.socket.disconnect()
