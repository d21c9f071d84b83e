"""Due message windows on a real Redis (messages.py): the sorted set workers poll in batches.

The database side (`notify_due`) is replaced by a recorder, so these check only what the Lua
scripts and the poll promise: a message is due after PUSH_DELAY (at once without a socket),
each (recipient, event) is taken once per window even with several workers polling, a message
arriving while its window is handled waits for its own due time, and a window whose worker died
is taken again after its lease. A message with several recipients (a group's) goes into one
window of its conversation instead: due after the delay for every member, checked again no
sooner than the gap, its members' intents made once per window.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from redis.asyncio import Redis

from src.common.events.messaging import MessageCreated
from src.modules.notifications import conversation_windows as conv
from src.modules.notifications import messages
from src.modules.notifications.messages import DUE_KEY, MessageNotifications, Pending, pending_key
from src.modules.notifications.presence import socket_key

DELAY = 0.3
GAP = 0.6


class Recorder(MessageNotifications):
    """The due check with `notify_due` recording what it was given (optionally slow)."""

    def __init__(self, redis: Redis, pause: float = 0.0, batch: int = 500) -> None:
        settings = SimpleNamespace(push_delay=DELAY, notification_due_batch=batch, notification_due_poll=0.05,
                                   notification_conversation_window_from=2, notification_conversation_window_gap=GAP)
        super().__init__(SimpleNamespace(ctx=SimpleNamespace(redis=redis, settings=settings)))  # type: ignore[arg-type]
        self.pause = pause
        self.seen: list[Pending] = []
        self.windows: list[tuple[uuid.UUID, list[conv.Item]]] = []

    async def notify_due(self, items: list[Pending]) -> None:
        if self.pause:
            await asyncio.sleep(self.pause)
        self.seen.extend(items)

    async def notify_conversation(self, conversation_id: uuid.UUID, items: list[conv.Item]) -> None:
        self.windows.append((conversation_id, sorted(items, key=lambda i: i.seq)))


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/12")  # a database no worker polls
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


def message(sender: uuid.UUID, recipient: uuid.UUID, conversation: uuid.UUID, seq: int) -> MessageCreated:
    return MessageCreated(message_id=uuid.uuid4(), conversation_id=conversation, sender_id=sender,
                          recipient_ids=[recipient], seq=seq)


async def drain(*checkers: Recorder, rounds: int = 40) -> None:
    for _ in range(rounds):
        await asyncio.gather(*(c.due_round() for c in checkers))
        await asyncio.sleep(0.02)


async def test_online_waits_the_delay_offline_is_due_at_once_and_the_window_closes(redis: Redis) -> None:
    checker = Recorder(redis)
    a, online, offline, conversation = (uuid.uuid4() for _ in range(4))
    await redis.sadd(socket_key(online), "sid")
    to_online, to_offline = message(a, online, conversation, 1), message(a, offline, conversation, 1)
    await checker.schedule(to_online)
    await checker.schedule(to_offline)
    await checker.schedule(to_online)  # a redelivered event: the same entry

    await checker.due_round()
    assert [p.event_id for p in checker.seen] == [to_offline.event_id]
    await asyncio.sleep(DELAY)
    await checker.due_round()
    assert [p.event_id for p in checker.seen] == [to_offline.event_id, to_online.event_id]
    assert checker.seen[1] == Pending(online, conversation, to_online.event_id, 1, to_online.message_id, a)
    assert await redis.zcard(DUE_KEY) == 0
    assert not await redis.exists(pending_key(online, conversation), pending_key(offline, conversation))


async def test_several_workers_take_each_message_once(redis: Redis) -> None:
    checkers = [Recorder(redis, pause=0.05, batch=10) for _ in range(3)]
    sent = []
    for i in range(60):
        event = message(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), i + 1)
        sent.append(event.event_id)
        await checkers[0].schedule(event)
    await drain(*checkers, rounds=10)
    taken = [p.event_id for c in checkers for p in c.seen]
    assert sorted(taken) == sorted(sent)
    assert sum(1 for c in checkers if c.seen) > 1  # they shared the work


async def test_a_message_arriving_while_its_window_is_handled_waits_for_its_own_due_time(redis: Redis) -> None:
    checker = Recorder(redis, pause=0.2)
    a, b, conversation = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await redis.sadd(socket_key(b), "sid")
    first, second = message(a, b, conversation, 1), message(a, b, conversation, 2)
    await checker.schedule(first)
    await asyncio.sleep(DELAY)
    handling = asyncio.create_task(checker.due_round())
    await asyncio.sleep(0.05)  # claimed, being notified
    await checker.schedule(second)
    await handling
    assert [p.seq for p in checker.seen] == [1]
    score = await redis.zscore(DUE_KEY, f"{b}:{conversation}")
    assert score is not None  # the window stays, due when the second message is
    await checker.due_round()
    assert [p.seq for p in checker.seen] == [1]  # not yet: its own delay
    await asyncio.sleep(DELAY)
    await checker.due_round()
    assert [p.seq for p in checker.seen] == [1, 2]
    assert await redis.zcard(DUE_KEY) == 0


async def test_a_window_whose_worker_died_is_taken_again_after_its_lease(redis: Redis,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages, "LEASE_MS", 200)
    dead, alive = Recorder(redis), Recorder(redis)
    event = message(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), 1)
    await dead.schedule(event)

    async def crash(items: list[Pending]) -> Any:
        raise RuntimeError("worker killed")

    dead.notify_due = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await dead.due_round()
    await alive.due_round()
    assert alive.seen == []  # leased
    await asyncio.sleep(0.25)
    await alive.due_round()
    assert [p.event_id for p in alive.seen] == [event.event_id]
    assert await redis.zcard(DUE_KEY) == 0


async def test_a_group_message_goes_into_one_window_of_its_conversation(redis: Redis) -> None:
    checker = Recorder(redis)
    sender, conversation = uuid.uuid4(), uuid.uuid4()
    members = [uuid.uuid4() for _ in range(50)]
    await redis.sadd(socket_key(members[0]), "sid")  # connected or not: every member alike
    burst = [MessageCreated(message_id=uuid.uuid4(), conversation_id=conversation, sender_id=sender,
                            recipient_ids=members, seq=seq) for seq in (1, 2, 3)]
    for event in burst:
        await checker.schedule(event)
    await checker.schedule(burst[0])  # a redelivered event: the same entry
    assert await redis.hlen(conv.window_key(conversation)) == 3
    assert [k async for k in redis.scan_iter("notifications:pending:*")] == []  # nothing per member
    assert await redis.zcard(DUE_KEY) == 0

    await checker.due_round()
    assert checker.windows == []  # not yet: the delay, for members without a socket too
    await asyncio.sleep(DELAY)
    await checker.schedule(MessageCreated(message_id=uuid.uuid4(), conversation_id=conversation, sender_id=sender,
                                          recipient_ids=members, seq=4))
    await checker.due_round()
    assert [(c, [i.seq for i in items]) for c, items in checker.windows] == [(conversation, [1, 2, 3])]
    assert checker.windows[0][1][0] == conv.Item(burst[0].event_id, 1, burst[0].message_id, sender)

    await asyncio.sleep(DELAY)
    await checker.due_round()
    assert len(checker.windows) == 1  # the 4th is due, but the window was checked less than the gap ago
    await asyncio.sleep(GAP - DELAY)
    await checker.due_round()
    assert [[i.seq for i in items] for _, items in checker.windows] == [[1, 2, 3], [4]]
    assert await redis.zcard(conv.DUE_KEY) == 0
    assert not await redis.exists(conv.window_key(conversation))


def test_a_window_makes_one_intent_per_member_and_sender_counting_what_they_have_not_seen() -> None:
    conversation, ann, bob, cy = (uuid.uuid4() for _ in range(4))
    items = [conv.Item(uuid.uuid4(), seq, uuid.uuid4(), sender)
             for seq, sender in ((5, ann), (6, bob), (7, ann), (8, ann))]
    intents = conv.member_intents(conversation, items, [(ann, 4), (bob, 6), (cy, 7)])
    got = {(i.recipient_id, i.actor_id): (i.events, i.subject_seq, i.event_id) for i in intents}
    assert got == {
        (ann, bob): (1, 6, items[1].event_id),  # never their own messages
        (bob, ann): (2, 8, items[3].event_id),  # read up to 6: seqs 7 and 8
        (cy, ann): (1, 8, items[3].event_id),
    }
    assert all(i.collapse and i.kind == "message" and i.subject_id == conversation for i in intents)
    assert intents[0].data == {"conversation_id": str(conversation), "message_id": str(items[1].message_id),
                               "seq": 6}
