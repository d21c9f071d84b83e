"""Bench users and direct conversations, signed up once and cached in a file.

Sign-up hashes a password with argon2 (tens of ms of CPU each), so thousands of users take
minutes: they are kept in `bench/.cache/<host>_<port>.json` with their tokens. On the next run
the cache is checked (one `GET /users/me`); expired access tokens are renewed through
`/auth/refresh` (no argon2), and a cache from another database is thrown away.
Start the bench API with ACCESS_TOKEN_TTL=86400 so tokens outlive a run.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from benchlib import host_port, signup

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
RENEW_MARGIN = 600.0  # seconds of validity an access token must still have


def _cache_path(base_url: str) -> Path:
    host, port = host_port(base_url)
    return CACHE_DIR / f"{host}_{port}.json"


def _load(base_url: str) -> dict[str, Any]:
    path = _cache_path(base_url)
    if path.exists():
        try:
            data = json.loads(path.read_text())
            if isinstance(data.get("users"), list) and isinstance(data.get("conversations"), dict):
                return data
        except (OSError, ValueError):
            pass
    return {"users": [], "conversations": {}}


def _save(base_url: str, data: dict[str, Any]) -> None:
    CACHE_DIR.mkdir(exist_ok=True)
    path = _cache_path(base_url)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


async def _valid(session: aiohttp.ClientSession, base_url: str, user: dict[str, Any]) -> bool:
    headers = {"Authorization": f"Bearer {user['token']}"}
    async with session.get(f"{base_url}/api/v1/users/me", headers=headers) as response:
        return response.status == 200 and (await response.json()).get("id") == user["id"]


async def _renew(session: aiohttp.ClientSession, base_url: str, user: dict[str, Any]) -> bool:
    async with session.post(f"{base_url}/api/v1/auth/refresh",
                            json={"refresh_token": user["refresh"]}) as response:
        if response.status != 200:
            return False
        tokens = await response.json()
    user.update(token=tokens["access_token"], refresh=tokens["refresh_token"],
                expires_at=time.time() + float(tokens.get("expires_in", 0)))
    return True


async def _bounded(jobs: list[Any], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Any) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(run(j) for j in jobs))


async def ensure_users(base_url: str, count: int, *, log: Any = print) -> list[dict[str, Any]]:
    """`count` users {id, username, token, refresh, expires_at} with valid access tokens."""
    data = _load(base_url)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        users: list[dict[str, Any]] = data["users"]
        if users:
            first = users[0]
            if first.get("expires_at", 0) - time.time() < RENEW_MARGIN:
                await _renew(session, base_url, first)
            if not await _valid(session, base_url, first):
                log("population: cached users are unknown to this API (another database?); starting over")
                data = {"users": [], "conversations": {}}
                users = data["users"]
        stale = [u for u in users[:count] if u.get("expires_at", 0) - time.time() < RENEW_MARGIN]
        if stale:
            log(f"population: renewing {len(stale)} access tokens")
            renewed = await _bounded([_renew(session, base_url, u) for u in stale], 32)
            if not all(renewed):
                raise SystemExit("population: some refresh tokens were refused; delete the cache file "
                                 f"{_cache_path(base_url)} and run again")
            _save(base_url, data)
        missing = count - len(users)
        if missing > 0:
            log(f"population: signing up {missing} users (argon2: this takes a while, once)")
            started = time.monotonic()

            async def one() -> dict[str, Any]:
                body = await signup(session, base_url, "bm")
                return {"id": body["user"]["id"], "username": body["user"]["username"],
                        "token": body["access_token"], "refresh": body["refresh_token"],
                        "expires_at": time.time() + float(body.get("expires_in", 0))}

            for start in range(0, missing, 200):
                batch = await _bounded([one() for _ in range(min(200, missing - start))], 8)
                users.extend(batch)
                _save(base_url, data)
                log(f"population: {len(users)} users ({time.monotonic() - started:.0f} s)")
    return users[:count]


async def ensure_direct_conversations(base_url: str, pairs: list[tuple[dict[str, Any], dict[str, Any]]],
                                      *, log: Any = print) -> list[str]:
    """The direct conversation id of each pair (created once, cached)."""
    data = _load(base_url)
    known: dict[str, str] = data["conversations"]
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def open_direct(a: dict[str, Any], b: dict[str, Any]) -> str:
            key = f"{a['id']}:{b['id']}"
            if key not in known:
                headers = {"Authorization": f"Bearer {a['token']}"}
                for _ in range(20):  # an `overloaded` 503 is retried after its Retry-After, as a client would
                    async with session.post(f"{base_url}/api/v1/conversations", json={"user_id": b["id"]},
                                            headers=headers) as response:
                        if response.status == 503 and "Retry-After" in response.headers:
                            await asyncio.sleep(float(response.headers["Retry-After"]))
                            continue
                        if response.status not in (200, 201):
                            raise RuntimeError(f"POST /conversations: {response.status} {await response.text()}")
                        known[key] = (await response.json())["id"]
                        break
                else:
                    raise RuntimeError("POST /conversations: still overloaded after 20 tries")
            return known[key]

        missing = sum(1 for a, b in pairs if f"{a['id']}:{b['id']}" not in known)
        if missing:
            log(f"population: opening {missing} direct conversations")
        ids = await _bounded([open_direct(a, b) for a, b in pairs], 16)
    if missing:
        _save(base_url, data)
    return ids
