"""The permission cache in Redis: answers keyed `perm:{action}:{actor}:{target}`, checked by version.

Each cached answer carries the two version tokens it was computed under:
`perm:v:{target}` (the target's settings) and `perm:pv:{lo}:{hi}` (the pair: blocks and
friendship between the two users). One MGET reads the answers and both current tokens; an
answer counts only while both tokens still match. Invalidation writes a fresh random token
(O(1), no KEYS/SCAN, no index set); stale answers simply expire with their TTL.

Why this is race-free: the tokens are read *before* the answer is computed from PostgreSQL.
If a block commits and its listener replaces the pair token while the computation runs, the
answer is stored under the old token and is never served. An absent token means "unknown": a
miss creates it (SET NX) before computing, and tokens are random, never reused, so an eviction
or expiry can never make an old answer valid again. A user's settings are cached the same way,
under their target version (messaging asks for them on every read receipt).
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import msgspec
from redis.asyncio import Redis

from src.common.queries.privacy import Decision, PrivacySettingsView
from src.infra.redis_tick import tick_pipeline
from src.modules.privacy.rules import ACTIONS, ALLOWED, BLOCKED, NOT_ALLOWED, Action

PERMISSION_TTL = 600  # seconds an answer may be served
VERSION_TTL = 2 * PERMISSION_TTL  # a version outlives most answers written under it

_CODE = {ALLOWED: "a", BLOCKED: "b", NOT_ALLOWED: "n"}
_DECISION = {code: decision for decision, code in _CODE.items()}


def perm_key(action: Action, actor: uuid.UUID, target: uuid.UUID) -> str:
    """Where the answer to "may actor do action to target" is cached."""
    return f"perm:{action}:{actor}:{target}"


def target_version_key(target: uuid.UUID) -> str:
    """The version of every answer about `target` (its settings)."""
    return f"perm:v:{target}"


def settings_key(user_id: uuid.UUID) -> str:
    """Where a user's settings are cached (valid under the user's target version)."""
    return f"privacy:settings:{user_id}"


def pair_version_key(a: uuid.UUID, b: uuid.UUID) -> str:
    """The version of the answers between two users, both directions (blocks, friendship)."""
    lo, hi = sorted((str(a), str(b)))
    return f"perm:pv:{lo}:{hi}"


def _valid(value: str, target_version: str, pair_version: str) -> Decision | None:
    """The decision cached in `value` if it was stored under these versions (else None)."""
    parts = value.split("|")
    if len(parts) != 3 or parts[0] != target_version or parts[1] != pair_version:
        return None
    return _DECISION.get(parts[2])


def _jittered_ttl() -> int:
    """PERMISSION_TTL minus up to 20 %: answers cached together do not all expire together."""
    return PERMISSION_TTL - random.randint(0, PERMISSION_TTL // 5)


def _token() -> str:
    return secrets.token_hex(6)


@dataclass
class Lookup:
    """What the cache held: valid answers, and the versions a fresh answer must be stored under."""

    hits: dict[Action, Decision] = field(default_factory=dict)
    target_version: str = ""
    pair_version: str = ""


class PermissionCache:
    """Reads, stores and invalidates cached permission answers (every call may raise REDIS_ERRORS)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def lookup(self, actor: uuid.UUID, target: uuid.UUID, actions: Sequence[Action]) -> Lookup:
        """The cached answers still valid; on a miss, the current versions (created when absent)."""
        tv_key, pv_key = target_version_key(target), pair_version_key(actor, target)
        keys = [*(perm_key(a, actor, target) for a in actions), tv_key, pv_key]
        # in the turn's shared pipeline: beside the send's rate limit in one round trip (redis_tick.py)
        *values, tv, pv = cast(list[str | None], await tick_pipeline(self._redis).call(lambda pipe: pipe.mget(keys)))
        found = Lookup(target_version=tv or "", pair_version=pv or "")
        if tv and pv:
            for action, value in zip(actions, values, strict=True):
                if value and (decision := _valid(value, tv, pv)) is not None:
                    found.hits[action] = decision
            if len(found.hits) == len(actions):
                return found
        else:
            found.target_version, found.pair_version = await self._ensure_versions(tv_key, pv_key)
        return found

    async def _ensure_versions(self, tv_key: str, pv_key: str) -> tuple[str, str]:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in (tv_key, pv_key):
                pipe.set(key, _token(), nx=True, ex=VERSION_TTL)
                pipe.get(key)
            _, tv, _, pv = await pipe.execute()
        return tv, pv

    async def store(self, actor: uuid.UUID, target: uuid.UUID, seen: Lookup,
                    decisions: dict[Action, Decision]) -> None:
        """Cache answers computed after `seen` under the versions `seen` read."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for action, decision in decisions.items():
                pipe.set(perm_key(action, actor, target),
                         f"{seen.target_version}|{seen.pair_version}|{_CODE[decision]}", ex=_jittered_ttl())
            await pipe.execute()

    async def lookup_settings(self, user_id: uuid.UUID) -> tuple[PrivacySettingsView | None, str]:
        """A user's cached settings if still valid, and the target version to store a fresh copy under."""
        tv_key = target_version_key(user_id)
        value, tv = cast(list[str | None], await self._redis.mget([settings_key(user_id), tv_key]))
        if tv and value and value.startswith(tv + "|"):
            return msgspec.json.decode(value[len(tv) + 1:], type=PrivacySettingsView), tv
        if not tv:
            await self._redis.set(tv_key, _token(), nx=True, ex=VERSION_TTL)
            tv = cast(str | None, await self._redis.get(tv_key))
        return None, tv or ""

    async def store_settings(self, user_id: uuid.UUID, version: str, settings: PrivacySettingsView) -> None:
        """Cache settings read from PostgreSQL under the target version seen before reading."""
        await self._redis.set(settings_key(user_id), f"{version}|{msgspec.json.encode(settings).decode()}",
                              ex=PERMISSION_TTL)

    async def invalidate_pair(self, a: uuid.UUID, b: uuid.UUID) -> None:
        """Drop the answers between `a` and `b`, both ways (new pair version; the keys go too)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(pair_version_key(a, b), _token(), ex=VERSION_TTL)
            pipe.delete(*(perm_key(action, x, y) for action in ACTIONS for x, y in ((a, b), (b, a))))
            await pipe.execute()

    async def invalidate_pairs(self, user: uuid.UUID, others: Sequence[uuid.UUID]) -> None:
        """`invalidate_pair` for `user` and each of `others`, in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for other in others:
                pipe.set(pair_version_key(user, other), _token(), ex=VERSION_TTL)
            await pipe.execute()

    async def invalidate_target(self, target: uuid.UUID) -> None:
        """Drop every answer about `target`, whoever asked (new target version)."""
        await self._redis.set(target_version_key(target), _token(), ex=VERSION_TTL)
