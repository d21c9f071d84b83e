"""Messages notify late and only if still unread: a message is checked PUSH_DELAY seconds after
it was stored (at once for a recipient with no socket connected), and becomes a notification
(one per conversation, collapsed while unread) only for recipients whose read position is still
below it and who did not mute the conversation.

A message with NOTIFICATION_CONVERSATION_WINDOW_FROM recipients or more (a group's) goes into one
window of its conversation instead, checked PUSH_DELAY later for every member alike
(conversation_windows.py); what follows describes the per-recipient windows (direct messages).

Cheap per message: the MessageCreated listener makes one Redis call (a Lua script) that adds the
message to each recipient's pending window `notifications:pending:{recipient}:{conversation}`
(a hash: event id → "seq,message id,sender id,due ms") and puts the window in the sorted set
`notifications:due` (score: its earliest due time; `ZADD LT` keeps an earlier one). No broker
message and no database work in the API. Every worker process polls the set (`due_round`, a
worker loop): it claims up to NOTIFICATION_DUE_BATCH due windows with a lease (their score moves
LEASE_MS ahead, so a crashed worker's windows come back), reads their due items, checks them all
in one query, writes their notifications in one transaction and pushes them, then removes what it
handled and gives each window the due time of what remains (or drops it). Idempotent per event:
every (recipient, event id) is claimed once (notifier), so a window taken twice notifies once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from src.common.events.messaging import MessageCreated
from src.common.queries.messaging import GetMembersToNotify, GetReadStates
from src.infra.redis_tick import run_script
from src.modules.notifications import conversation_windows as conv
from src.modules.notifications.presence import socket_key
from src.modules.notifications.store import Intent

if TYPE_CHECKING:
    from src.modules.notifications.services import Services

TTL_MS = 3600_000  # pending items outlive a worker backlog of up to an hour
LEASE_MS = 60_000  # a claimed window is taken again if its worker has not finished it by then
DUE_KEY = "notifications:due"
PENDING_PREFIX = "notifications:pending:"

# KEYS: pending keys, then socket-set keys, then the due set. ARGV: event id, "seq,message,sender",
# now ms, delay ms, ttl ms, then the windows ("recipient:conversation") in the keys' order.
SCHEDULE_LUA = """
local n = (#KEYS - 1) / 2
local now, delay, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 1, n do
  local at = now
  if redis.call('SCARD', KEYS[n + i]) > 0 then at = now + delay end
  redis.call('HSET', KEYS[i], ARGV[1], ARGV[2] .. ',' .. at)
  redis.call('PEXPIRE', KEYS[i], ttl)
  redis.call('ZADD', KEYS[#KEYS], 'LT', at, ARGV[5 + i])
end
return n
"""

# KEYS: the due set. ARGV: now ms, lease until ms, limit. The windows due now, leased.
CLAIM_LUA = """
local windows = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, window in ipairs(windows) do redis.call('ZADD', KEYS[1], ARGV[2], window) end
return windows
"""

# KEYS: pending keys. ARGV: now ms. Per key: the flat list of due (event id, value) pairs
# (`_opened`: a field of windows scheduled before the due set existed).
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

# KEYS: pending keys, then the due set. ARGV: the windows in the keys' order, then for each key
# the count of handled event ids then the ids. Each window gets the earliest due time of what
# remains, or leaves the due set (its key deleted) when nothing does.
FINISH_LUA = """
local n = #KEYS - 1
local a = n + 1
for i = 1, n do
  local key = KEYS[i]
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
  if earliest < 0 then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[#KEYS], ARGV[i])
  else
    redis.call('ZADD', KEYS[#KEYS], earliest, ARGV[i])
  end
end
return n
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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class MessageNotifications:
    """Schedules the check of a new message, and runs it."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self._ctx = services.ctx
        redis = services.ctx.redis
        self._schedule = redis.register_script(SCHEDULE_LUA)
        self._claim = redis.register_script(CLAIM_LUA)
        self._take = redis.register_script(TAKE_LUA)
        self._finish = redis.register_script(FINISH_LUA)
        self._conv_schedule = redis.register_script(conv.SCHEDULE_LUA)
        self._conv_finish = redis.register_script(conv.FINISH_LUA)

    async def schedule(self, event: MessageCreated) -> None:
        """Add the message to each recipient's window, due now for recipients with no socket and
        after PUSH_DELAY for the others. Idempotent: a redelivered event rewrites its own entry."""
        await self.schedule_many([event])

    async def schedule_many(self, events: list[MessageCreated]) -> None:
        """`schedule` for several messages (the dispatcher's batch): their scripts are issued in one
        loop turn, so they go out as one write on the lean connection (src/infra/redis_tick.py)."""
        calls = [call for event in events if (call := self._schedule_call(event)) is not None]
        await asyncio.gather(*(run_script(script, keys=keys, args=args) for script, keys, args in calls))

    def _schedule_call(self, event: MessageCreated) -> tuple[Any, list[Any], list[Any]] | None:
        """The script, keys and arguments that schedule `event` (None: nobody to notify)."""
        recipients = list(event.recipient_ids)
        if not recipients:
            return None
        delay_ms = int(self._ctx.settings.push_delay * 1000)
        if len(recipients) >= self._ctx.settings.notification_conversation_window_from:
            due = _now_ms() + delay_ms
            return (self._conv_schedule, [conv.window_key(event.conversation_id), conv.DUE_KEY],
                    [str(event.event_id), f"{event.seq},{event.message_id},{event.sender_id},{due}", due,
                     delay_ms + TTL_MS, str(event.conversation_id)])
        return (self._schedule,
                [*(pending_key(r, event.conversation_id) for r in recipients), *(socket_key(r) for r in recipients),
                 DUE_KEY],
                [str(event.event_id), f"{event.seq},{event.message_id},{event.sender_id}", _now_ms(), delay_ms,
                 delay_ms + TTL_MS, *(f"{r}:{event.conversation_id}" for r in recipients)])

    async def due_round(self) -> float:
        """One poll of a worker loop: claim the due windows (at most NOTIFICATION_DUE_BATCH) and
        handle them; the seconds to wait before the next poll (none when the batch was full)."""
        limit = self._ctx.settings.notification_due_batch
        now = _now_ms()
        claimed = await self._claim(keys=[DUE_KEY], args=[now, now + LEASE_MS, limit])
        if claimed:
            await self.due_windows([self._split(_text(w)) for w in claimed])
        now = _now_ms()
        conversations = await self._claim(keys=[conv.DUE_KEY], args=[now, now + LEASE_MS, conv.CLAIM_LIMIT])
        for conversation in conversations:
            await self.due_conversation(uuid.UUID(_text(conversation)))
        full = len(claimed) >= limit or len(conversations) >= conv.CLAIM_LIMIT
        return 0.0 if full else self._ctx.settings.notification_due_poll

    async def due_conversation(self, conversation_id: uuid.UUID) -> None:
        """Notify the members of what is due in a conversation's window, then give the window the
        due time of what remains, no sooner than NOTIFICATION_CONVERSATION_WINDOW_GAP (or drop it)."""
        key = conv.window_key(conversation_id)
        flat = (await self._take(keys=[key], args=[_now_ms()]))[0]
        ids = [_text(flat[j]) for j in range(0, len(flat), 2)]
        items = [conv.parse_item(event_id, _text(value)) for event_id, value in zip(ids, flat[1::2], strict=True)]
        await self.notify_conversation(conversation_id, items)
        not_before = _now_ms() + int(self._ctx.settings.notification_conversation_window_gap * 1000)
        await self._conv_finish(keys=[key, conv.DUE_KEY], args=[str(conversation_id), not_before, *ids])

    async def notify_conversation(self, conversation_id: uuid.UUID, items: list[conv.Item]) -> None:
        """Notify each member who may be notified of these messages (one query for them all) of
        those they have not read, one notification per member collapsed as for direct messages."""
        if not items:
            return
        members = await self._ctx.queries.ask(GetMembersToNotify(conversation_id=conversation_id,
                                                                 seq=max(i.seq for i in items)))
        if not members:
            return
        rows = await self._s.notifier.notify_once(
            conversation_id, [i.event_id for i in items],
            lambda events: conv.member_intents(conversation_id, [i for i in items if i.event_id in events], members),
            push_here=True)
        await self._clear_read_meanwhile(rows)

    @staticmethod
    def _split(window: str) -> tuple[uuid.UUID, uuid.UUID]:
        recipient, _, conversation = window.partition(":")
        return uuid.UUID(recipient), uuid.UUID(conversation)

    async def due_windows(self, windows: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
        """Notify what is due in these windows, then drop them from the due set (or give them the
        due time of what remains)."""
        windows = list(dict.fromkeys(windows))
        if not windows:
            return
        keys = [pending_key(r, c) for r, c in windows]
        taken = await self._take(keys=keys, args=[_now_ms()])
        items: list[Pending] = []
        handled: list[Any] = []
        for (recipient, conversation), flat in zip(windows, taken, strict=True):
            ids = [_text(flat[j]) for j in range(0, len(flat), 2)]
            for event_id, value in zip(ids, flat[1::2], strict=True):
                seq, message_id, sender_id, _ = _text(value).split(",")
                items.append(Pending(recipient, conversation, uuid.UUID(event_id), int(seq), uuid.UUID(message_id),
                                     uuid.UUID(sender_id)))
            handled += [len(ids), *ids]
        await self.notify_due(items)
        await self._finish(keys=[*keys, DUE_KEY], args=[*(f"{r}:{c}" for r, c in windows), *handled])

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
        await self._clear_read_meanwhile(rows)

    async def _clear_read_meanwhile(self, rows: list[Any]) -> None:
        """Mark read what was read while these notifications were being written (that read found
        nothing to clear)."""
        if not rows:
            return
        after = await self._ctx.queries.ask(GetReadStates(pairs=[(r.subject_id, r.user_id) for r in rows]))
        for r in rows:
            position = after.get((r.subject_id, r.user_id), (0, False))[0]
            if position >= (r.subject_seq or 0):
                await self._s.clearing.read(r.user_id, conversation=(r.subject_id, r.subject_seq))

    async def _states(self, items: list[Pending]) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[int, bool]]:
        pairs = list(dict.fromkeys((p.conversation_id, p.recipient_id) for p in items))
        return await self._ctx.queries.ask(GetReadStates(pairs=pairs))  # type: ignore[no-any-return]
