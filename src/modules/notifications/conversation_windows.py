"""One pending window per conversation for messages with many recipients (a group's).

Scheduling costs one small Redis script per message whatever the group's size: the message goes
into the hash `notifications:conversation:{conversation}` (event id → "seq,message id,sender id,
due ms", due PUSH_DELAY later for every member alike) and the window into the sorted set
`notifications:due:conversations` (score: its earliest due time, `ZADD LT`). A worker claims due
windows with a lease as for the per-recipient windows (messages.py), takes the due messages,
asks messaging once for the members who may be notified (GetMembersToNotify: not muted, read and
join positions below the window's last seq) and makes, per member, one intent per sender standing
for that sender's unread messages of the window (`Intent.events`). The events are claimed once per
conversation (Notifier.notify_once: one idempotency row per message, not one per member), and
what remains gets its window checked again no sooner than NOTIFICATION_CONVERSATION_WINDOW_GAP
seconds later, so a burst costs one notification update per member per gap, not per message.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from dataclasses import dataclass

from src.modules.notifications.store import Intent

DUE_KEY = "notifications:due:conversations"
CLAIM_LIMIT = 8  # windows a worker takes per round (each is a query and a write for every member)


def window_key(conversation_id: uuid.UUID) -> str:
    return f"notifications:conversation:{conversation_id}"


# KEYS: the window, the due set. ARGV: event id, "seq,message,sender,due", due ms, ttl ms, window name.
SCHEDULE_LUA = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
redis.call('ZADD', KEYS[2], 'LT', tonumber(ARGV[3]), ARGV[5])
return 1
"""

# KEYS: the window, the due set. ARGV: window name, not before ms, then the handled event ids.
# The window gets the later of its earliest remaining due time and `not before`, or leaves the
# due set (its key deleted) when nothing remains.
FINISH_LUA = """
for i = 3, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
local all = redis.call('HGETALL', KEYS[1])
local earliest = -1
for j = 1, #all, 2 do
  local due = tonumber(string.match(all[j + 1], ',(%d+)$'))
  if earliest < 0 or due < earliest then earliest = due end
end
if earliest < 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], math.max(earliest, tonumber(ARGV[2])), ARGV[1])
end
return 1
"""


@dataclass(frozen=True)
class Item:
    """One message waiting in its conversation's window."""

    event_id: uuid.UUID
    seq: int
    message_id: uuid.UUID
    sender_id: uuid.UUID


def parse_item(event_id: str, value: str) -> Item:
    seq, message_id, sender_id, _ = value.split(",")
    return Item(uuid.UUID(event_id), int(seq), uuid.UUID(message_id), uuid.UUID(sender_id))


def member_intents(conversation_id: uuid.UUID, items: list[Item],
                   members: list[tuple[uuid.UUID, int]]) -> list[Intent]:
    """Per member (user id, seen position) and sender other than the member: one intent for the
    sender's messages after the member's position (their count in `events`, the latest as the
    event), none when there are none."""
    by_sender: dict[uuid.UUID, list[Item]] = {}
    for item in sorted(items, key=lambda i: i.seq):
        by_sender.setdefault(item.sender_id, []).append(item)
    senders = [(sender, [i.seq for i in sent], sent[-1],
                {"conversation_id": str(conversation_id), "message_id": str(sent[-1].message_id),
                 "seq": sent[-1].seq})
               for sender, sent in by_sender.items()]
    intents = []
    for user_id, seen in members:
        for sender, seqs, last, data in senders:
            if sender == user_id:
                continue
            unread = len(seqs) - bisect_right(seqs, seen)
            if unread:
                intents.append(Intent(recipient_id=user_id, kind="message", actor_id=sender, event_id=last.event_id,
                                      subject_id=conversation_id, subject_seq=last.seq, collapse=True, data=data,
                                      events=unread))
    return intents
