"""Helpers shared by the posts e2e tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.e2e.harness import User, new_user, ok
from tests.e2e.harness import problem as problem  # re-exported for the posts tests


async def users(http: httpx.AsyncClient, n: int) -> list[User]:
    return list(await asyncio.gather(*(new_user(http) for _ in range(n))))


async def create_post(http: httpx.AsyncClient, author: User, privacy: str = "public", body: str | None = None,
                      **extra: Any) -> dict[str, Any]:
    payload = {"privacy": privacy, "body": body or f"post {uuid.uuid4().hex[:8]}", **extra}
    return dict(ok(await http.post("/posts", json=payload, headers=author.headers), 201))


async def follow(http: httpx.AsyncClient, follower: User, followee: User) -> None:
    ok(await http.put(f"/users/{followee.id}/follow", headers=follower.headers))


async def block(http: httpx.AsyncClient, blocker: User, blocked: User) -> None:
    response = await http.put(f"/users/{blocked.id}/block", headers=blocker.headers)
    assert response.status_code in (200, 201, 204), response.text


async def feed_ids(http: httpx.AsyncClient, user: User, limit: int = 100) -> list[str]:
    """Every post id of the user's feed, following the cursor to the end."""
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = ok(await http.get("/posts/feed", params=params, headers=user.headers))
        ids += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return ids


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20, what: str = "condition") -> None:  # noqa: ASYNC109
    """Poll `check` until it is true (a positive signal), failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.1)
