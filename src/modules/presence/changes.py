"""Socket changes (connects, heartbeats, disconnects) written to Redis in batches, one script per batch.

A connect storm (a deploy, a network blip, mobile clients flapping) used to cost one Lua call
and its Redis round trip per connect and per disconnect, awaited on the socket's path, about a
tenth of the API's CPU per connect + disconnect (bench/presence.py). Here a change is only
appended to a list (the socket's hook returns at once); every `window` seconds one task writes
all changes gathered meanwhile as ONE script call (`_APPLY`, at most MAX_BATCH changes each, in
the order they happened), so at 200 connects/s a batch holds ~20 changes and presence costs the
event loop one round trip per window instead of two per socket: low-priority work that never
holds up message delivery. The script applies exactly the steps of the per-socket scripts it
replaces (see state.py), so a connect and a sweep still never interleave.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import structlog
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from src.modules.presence.state import DUE, DUE_TTL, KICK, KICK_EVERY, PREFIX

log = structlog.get_logger("chatty.presence")
MAX_BATCH = 500  # changes per script call
ALIVE, GONE = "a", "g"

_APPLY = """
-- KEYS: due, kick
-- ARGV: prefix, ttl_s, due_ttl_s, kick_s, debounce_ms, then per change: op, user, sid, at_ms
--   op 'a' (connect / heartbeat): at_ms is the socket's new expiry;
--   op 'g' (disconnect): at_ms is when it happened (a check is due `debounce` later).
-- Returns {kick (1: this caller must start the sweep chain), users who came online...}
local prefix, ttl, debounce = ARGV[1], ARGV[2], tonumber(ARGV[5])
local came, wants_kick = {}, false
for i = 6, #ARGV, 4 do
  local op, user, sid, at = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local sockets = prefix .. 'sockets:' .. user
  if op == 'a' then
    redis.call('ZADD', sockets, at, sid)
    redis.call('EXPIRE', sockets, ttl)
    redis.call('ZADD', KEYS[1], 'GT', at, user)
    if redis.call('SET', prefix .. 'online:' .. user, '1', 'NX', 'EX', ttl) then
      table.insert(came, user)
      wants_kick = true
    else
      redis.call('EXPIRE', prefix .. 'online:' .. user, ttl)
    end
  else
    redis.call('ZREM', sockets, sid)
    if redis.call('ZCOUNT', sockets, '(' .. at, '+inf') == 0 then
      redis.call('ZADD', KEYS[1], at + debounce, user)
      wants_kick = true
    end
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
local kick = 0
if wants_kick and redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then kick = 1 end
table.insert(came, 1, kick)
return came
"""


@dataclass
class Applied:
    """What a batch found: users who came online (to announce), whether to start a sweep chain."""

    came_online: list[uuid.UUID] = field(default_factory=list)
    kick: bool = False


class SocketChanges:
    """Gathers socket changes and writes them every `window` seconds (see the module doc).

    `on_applied` is called with what each written batch found (not awaited by the changes' callers)."""

    def __init__(self, redis: Redis, *, timeout: float, debounce: float, window: float,
                 on_applied: Callable[[Applied], Awaitable[None]]) -> None:
        self._redis, self._timeout, self._window = redis, timeout, window
        self._ttl = int(2 * timeout + debounce) + 1  # outlives any check that is due
        self._debounce_ms = int(debounce * 1000)
        self._on_applied = on_applied
        self._script = redis.register_script(_APPLY)
        self._pending: list[str] = []  # flattened changes: op, user, sid, at_ms
        self._written: asyncio.Future[None] | None = None  # resolved when the pending changes are written
        self._task: asyncio.Task[None] | None = None

    def alive(self, user_id: uuid.UUID, sid: str) -> asyncio.Future[None]:
        """A socket connected or sent a heartbeat (live for `timeout` more seconds)."""
        return self._add(ALIVE, user_id, sid, int((time.time() + self._timeout) * 1000))

    def gone(self, user_id: uuid.UUID, sid: str) -> asyncio.Future[None]:
        """A socket disconnected."""
        return self._add(GONE, user_id, sid, int(time.time() * 1000))

    def _add(self, op: str, user_id: uuid.UUID, sid: str, at_ms: int) -> asyncio.Future[None]:
        """Queue a change; the future resolves once it is written (await it to see Redis errors)."""
        self._pending += (op, str(user_id), sid, str(at_ms))
        if self._written is None:
            self._written = asyncio.get_running_loop().create_future()
            self._written.add_done_callback(_retrieve)
        if self._task is None:
            self._task = asyncio.create_task(self._write_soon(), name="presence-socket-changes")
        return self._written

    async def flush(self) -> None:
        """Write what is pending (at shutdown: the last disconnects are not lost); within a window."""
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=2 * self._window + 1.0)
        if self._pending and self._task is None:
            self._task = asyncio.create_task(self._write_soon(wait=False))
            await asyncio.gather(self._task, return_exceptions=True)

    async def _write_soon(self, wait: bool = True) -> None:
        try:
            while self._pending:
                if wait:
                    await asyncio.sleep(self._window)
                changes, self._pending = self._pending, []
                written, self._written = self._written, None
                try:
                    applied = await self._apply(changes)
                except Exception as exc:  # a Redis outage: heartbeats see it; the sweep catches up later
                    log.warning("presence.changes_failed", changes=len(changes) // 4, error=repr(exc))
                    if written is not None and not written.done():
                        written.set_exception(exc)
                    continue
                if written is not None and not written.done():
                    written.set_result(None)
                if applied.came_online or applied.kick:
                    try:
                        await self._on_applied(applied)
                    except Exception as exc:
                        log.warning("presence.changes_followup_failed", error=repr(exc))
        finally:
            self._task = None

    async def _apply(self, changes: list[str]) -> Applied:
        applied = Applied()
        step = 4 * MAX_BATCH
        for start in range(0, len(changes), step):
            result = cast(list[Any], await self._run(changes[start:start + step]))
            applied.kick = applied.kick or bool(int(result[0]))
            applied.came_online += [uuid.UUID(u.decode() if isinstance(u, bytes) else str(u)) for u in result[1:]]
        return applied

    async def _run(self, changes: list[str]) -> Any:
        args: list[str | int] = [PREFIX, self._ttl, DUE_TTL, KICK_EVERY, self._debounce_ms, *changes]
        try:
            return await self._redis.evalsha(self._script.sha, 2, DUE, KICK, *args)  # type: ignore[misc]
        except NoScriptError:  # Redis restarted (or flushed its scripts)
            await self._redis.script_load(_APPLY)
            return await self._redis.evalsha(self._script.sha, 2, DUE, KICK, *args)  # type: ignore[misc]


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # callers that did not await it were told through the log
