"""Messages notify late and only if still unread: a message is checked PUSH_DELAY seconds after
it was stored (at once for a recipient with no socket connected), and becomes a notification
(one per conversation, collapsed while unread) only for recipients whose read position is still
below it and who did not mute the conversation.

Cheap per message: the MessageCreated listener makes one Redis call (a Lua script) that adds the
message to each recipient's pending window `notifications:pending:{recipient}:{conversation}`
(a hash: event id → "seq,message id,sender id,due ms") and says which windows it opened; only an
opened window enqueues a `message_due` job (several windows in one job). No database work in
the API. The job (a worker, batched with its concurrent jobs) reads the due items, checks them
all in one query, writes their notifications in one transaction and pushes them, then removes
what it handled; what arrived meanwhile gets a follow-up job. A window whose job was lost (a
crash between the Lua call and the enqueue) is reopened by the next message after
`STALE_MS`. Idempotent per event: every (recipient, event id) is claimed once (notifier).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from src.common.events.messaging import MessageCreated
from src.common.queries.messaging import GetReadStates
from src.modules.notifications.jobs import MESSAGE_DUE
from src.modules.notifications.presence import socket_key
from src.modules.notifications.store import Intent

if TYPE_CHECKING:
    from src.modules.notifications.services import Services

STALE_MS = 30_000  # a window still open this long after its due time lost its job
TTL_MS = 3600_000  # pending items outlive a worker backlog of up to an hour

# KEYS: pending keys, then socket-set keys. ARGV: event id, "seq,message,sender", now ms,
# delay ms, ttl ms, stale ms. Per recipient: the delay (ms) of the job to enqueue, or -1.
SCHEDULE_LUA = """
local n = #KEYS / 2
local now, delay, ttl, stale = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {}
for i = 1, n do
  local key = KEYS[i]
  local wait = 0
  if redis.call('SCARD', KEYS[n + i]) > 0 then wait = delay end
  local opened = redis.call('HGET', key, '_opened')
  redis.call('HSET', key, ARGV[1], ARGV[2] .. ',' .. (now + wait))
  out[i] = -1
  if not opened or tonumber(opened) + delay + stale < now then
    redis.call('HSET', key, '_opened', now)
    out[i] = wait
  end
  redis.call('PEXPIRE', key, ttl)
end
return out
"""

# KEYS: pending keys. ARGV: now ms. Per key: the flat list of due (event id, value) pairs.
TAKE_LUA = """
local now = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local all = redis.call('HGETALL', key)
  local due = {}
  for j = 1, #all, 2 do
    if all[j] ~= '_opened' and tonumber(string.match(all[j + 1], ',(%d+)$')) <= now then
      due[#due + 1] = all[j]
      due[#due + 1] = all[j + 1]
    end
  end
  out[i] = due
end
return out
"""

# KEYS: pending keys. ARGV: for each key, the count of handled event ids then the ids.
# Per key: the earliest due ms of what remains, or -1 (the window is closed: key deleted).
FINISH_LUA = """
local out = {}
local a = 1
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[a])
  for j = 1, count do redis.call('HDEL', key, ARGV[a + j]) end
  a = a + count + 1
  local all = redis.call('HGETALL', key)
  local earliest = -1
  for j = 1, #all, 2 do
    if all[j] ~= '_opened' then
      local due = tonumber(string.match(all[j + 1], ',(%d+)$'))
      if earliest < 0 or due < earliest then earliest = due end
    end
  end
  if earliest < 0 then redis.call('DEL', key) end
  out[i] = earliest
end
return out
"""


def pending_key(recipient_id: uuid.UUID, conversation_id: uuid.UUID) -> str:
    return f"notifications:pending:{recipient_id}:{conversation_id}"


@dataclass(frozen=True)
class Pending:
    """One message waiting in a recipient's window."""

    recipient_id: uuid.UUID
    conversation_id: uuid.UUID
    event_id: uuid.UUID
    seq: int
    message_id: uuid.UUID
    sender_id: uuid.UUID


def _now_ms() -> int:
    return int(time.time() * 1000)


class MessageNotifications:
    """Schedules the check of a new message, and runs it."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self._ctx = services.ctx
        redis = services.ctx.redis
        self._schedule = redis.register_script(SCHEDULE_LUA)
        self._take = redis.register_script(TAKE_LUA)
        self._finish = redis.register_script(FINISH_LUA)

    async def schedule(self, event: MessageCreated) -> None:
        """Add the message to each recipient's window; enqueue a due job for the windows it opened
        (now for recipients with no socket, after PUSH_DELAY for the others). Idempotent: a
        redelivered event only rewrites its own entry."""
        recipients = list(event.recipient_ids)
        if not recipients:
            return
        delay_ms = int(self._ctx.settings.push_delay * 1000)
        keys = [pending_key(r, event.conversation_id) for r in recipients]
        opened = await self._schedule(
            keys=keys + [socket_key(r) for r in recipients],
            args=[str(event.event_id), f"{event.seq},{event.message_id},{event.sender_id}", _now_ms(), delay_ms,
                  delay_ms + TTL_MS, STALE_MS])
        by_delay: dict[int, list[str]] = {}
        for recipient, wait in zip(recipients, opened, strict=True):
            if int(wait) >= 0:
                by_delay.setdefault(int(wait), []).append(f"{recipient}:{event.conversation_id}")
        try:
            for wait, windows in by_delay.items():
                self._ctx.tasks.enqueue_in(MESSAGE_DUE, wait, windows=windows)
        except Exception:
            # No job for these windows: close them, so that the redelivered event reopens them.
            await self._ctx.redis.delete(*[pending_key(*self._split(w)) for ws in by_delay.values() for w in ws])
            raise

    @staticmethod
    def _split(window: str) -> tuple[uuid.UUID, uuid.UUID]:
        recipient, _, conversation = window.partition(":")
        return uuid.UUID(recipient), uuid.UUID(conversation)

    async def due_windows(self, windows: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
        """Notify what is due in these windows, then close them (or schedule what remains)."""
        windows = list(dict.fromkeys(windows))
        if not windows:
            return
        keys = [pending_key(r, c) for r, c in windows]
        taken = await self._take(keys=keys, args=[_now_ms()])
        items: list[Pending] = []
        handled: list[list[str]] = []
        for (recipient, conversation), flat in zip(windows, taken, strict=True):
            ids = []
            for j in range(0, len(flat), 2):
                event_id = flat[j].decode() if isinstance(flat[j], bytes) else flat[j]
                value = flat[j + 1].decode() if isinstance(flat[j + 1], bytes) else flat[j + 1]
                seq, message_id, sender_id, _ = value.split(",")
                items.append(Pending(recipient, conversation, uuid.UUID(event_id), int(seq), uuid.UUID(message_id),
                                     uuid.UUID(sender_id)))
                ids.append(event_id)
            handled.append(ids)
        await self.notify_due(items)
        args: list[Any] = []
        for ids in handled:
            args += [len(ids), *ids]
        remaining = await self._finish(keys=keys, args=args)
        now = _now_ms()
        by_delay: dict[int, list[str]] = {}
        for (recipient, conversation), earliest in zip(windows, remaining, strict=True):
            if int(earliest) >= 0:
                by_delay.setdefault(max(0, int(earliest) - now), []).append(f"{recipient}:{conversation}")
        for wait, names in by_delay.items():
            self._ctx.tasks.enqueue_in(MESSAGE_DUE, wait, windows=names)

    async def notify_due(self, items: list[Pending]) -> None:
        """Notify the recipients who have not read these messages and did not mute the conversation."""
        if not items:
            return
        states = await self._states(items)
        targets = [p for p in items if (state := states.get((p.conversation_id, p.recipient_id))) is not None
                   and state[0] < p.seq and not state[1]]
        rows = await self._s.notifier.notify([Intent(
            recipient_id=p.recipient_id, kind="message", actor_id=p.sender_id, event_id=p.event_id,
            subject_id=p.conversation_id, subject_seq=p.seq, collapse=True,
            data={"conversation_id": str(p.conversation_id), "message_id": str(p.message_id), "seq": p.seq},
        ) for p in targets], push_here=True)
        if not rows:
            return
        # A read that landed while the notifications were being written found nothing to clear.
        after = await self._ctx.queries.ask(GetReadStates(pairs=[(r.subject_id, r.user_id) for r in rows]))
        for r in rows:
            position = after.get((r.subject_id, r.user_id), (0, False))[0]
            if position >= (r.subject_seq or 0):
                await self._s.clearing.read(r.user_id, conversation=(r.subject_id, r.subject_seq))

    async def _states(self, items: list[Pending]) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[int, bool]]:
        pairs = list(dict.fromkeys((p.conversation_id, p.recipient_id) for p in items))
        return await self._ctx.queries.ask(GetReadStates(pairs=pairs))  # type: ignore[no-any-return]
