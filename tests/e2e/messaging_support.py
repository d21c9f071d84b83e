"""Helpers shared by the messaging e2e tests (conversations, messages, sockets)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import socketio

from tests.e2e.harness import EventRecorder, auth_headers, connect_socket, ok, signup
from tests.e2e.harness import problem as problem  # re-exported for the messaging tests

User = dict[str, Any]


def uid(user: User) -> str:
    return str(user["user"]["id"])


def h(user: User) -> dict[str, str]:
    return auth_headers(user["access_token"])


async def users(http: httpx.AsyncClient, n: int) -> list[User]:
    return list(await asyncio.gather(*(signup(http) for _ in range(n))))


async def open_direct(http: httpx.AsyncClient, a: User, b: User) -> dict[str, Any]:
    response = await http.post("/conversations", json={"user_id": uid(b)}, headers=h(a))
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def send(http: httpx.AsyncClient, user: User, conversation_id: str, body: str | None = "hi",
               **extra: Any) -> dict[str, Any]:
    payload = {"client_msg_id": extra.pop("client_msg_id", uuid.uuid4().hex), "body": body, **extra}
    return dict(ok(await http.post(f"/conversations/{conversation_id}/messages", json=payload, headers=h(user)),
                   201))


async def history(http: httpx.AsyncClient, user: User, conversation_id: str, **params: Any) -> list[dict[str, Any]]:
    page = ok(await http.get(f"/conversations/{conversation_id}/messages", params={"limit": 100, **params},
                             headers=h(user)))
    return list(page["items"])


async def conversation(http: httpx.AsyncClient, user: User, conversation_id: str) -> dict[str, Any]:
    return dict(ok(await http.get(f"/conversations/{conversation_id}", headers=h(user))))


@asynccontextmanager
async def device(base_url: str, user: User) -> AsyncIterator[tuple[socketio.AsyncClient, EventRecorder]]:
    """A connected socket of `user` with an event recorder; disconnected on exit."""
    recorder = EventRecorder()
    client = await connect_socket(base_url, user["access_token"], recorder=recorder)
    try:
        yield client, recorder
    finally:
        await client.disconnect()


async def call(client: socketio.AsyncClient, event: str, data: Any) -> dict[str, Any]:
    """Emit a client event and return its ack."""
    return dict(await client.call(event, data, timeout=10))


async def settle(seconds: float = 0.4) -> None:
    """Give events that should not arrive the time to arrive anyway."""
    await asyncio.sleep(seconds)
