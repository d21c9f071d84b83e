"""Ordering and exactly-once under load: the 20 members of a group each send 50 messages at the same
time over sockets; every socket of every member ends up with all 1,000 messages, `seq` 1..1000,
none twice, each sender's messages in the order they were sent."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import socketio

from tests.e2e.harness import ApiProcess, EventRecorder, auth_headers, connect_socket, signup

SENDERS, PER_SENDER = 20, 50
TOTAL = SENDERS * PER_SENDER


async def _until(predicate: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _assert_in_send_order(received: list[dict[str, Any]], label: str) -> None:
    """Messages of one sender arrive in the order that sender sent them (increasing seq)."""
    last: dict[str, int] = {}
    for message in received:
        sender, seq = message["sender_id"], message["seq"]
        assert seq > last.get(sender, 0), f"{label}: seq {seq} of {sender} arrived after {last[sender]}"
        last[sender] = seq


async def test_concurrent_senders_in_a_group_every_socket_gets_every_message_once(
        http: httpx.AsyncClient, api: ApiProcess) -> None:
    members = list(await asyncio.gather(*(signup(http) for _ in range(SENDERS))))
    owner, others = members[0], members[1:]
    response = await http.post("/groups", json={"name": "load", "member_ids": [m["user"]["id"] for m in others]},
                               headers=auth_headers(owner["access_token"]))
    assert response.status_code == 201, response.text
    cid = response.json()["id"]

    # Two devices per member: one sends (its own messages come back as acks), one only listens.
    recorders = [EventRecorder() for _ in range(2 * SENDERS)]
    sockets: list[socketio.AsyncClient] = list(await asyncio.gather(*(
        connect_socket(api.base_url, members[i % SENDERS]["access_token"], recorder=recorders[i])
        for i in range(2 * SENDERS))))
    senders, listeners = sockets[:SENDERS], recorders[SENDERS:]
    acks: list[list[dict[str, Any]]] = [[] for _ in range(SENDERS)]

    async def send_all(i: int) -> None:
        for k in range(PER_SENDER):
            ack = await senders[i].call("message:send", {"conversation_id": cid, "client_msg_id": f"m-{i}-{k}",
                                                         "body": f"{i}:{k}"}, timeout=30)
            assert ack["ok"] is True, ack
            acks[i].append(ack["data"])

    try:
        await asyncio.gather(*(send_all(i) for i in range(SENDERS)))
        by_seq = {m["seq"]: m for sent in acks for m in sent}
        assert sorted(by_seq) == list(range(1, TOTAL + 1))  # consecutive, no gaps, no reuse
        for i, sent in enumerate(acks):
            assert [m["body"] for m in sent] == [f"{i}:{k}" for k in range(PER_SENDER)]
            assert [m["seq"] for m in sent] == sorted(m["seq"] for m in sent)

        def new(recorder: EventRecorder) -> list[dict[str, Any]]:
            return list(recorder.events.get("message:new", []))

        await _until(lambda: all(len(new(r)) >= TOTAL for r in listeners)
                     and all(len(new(r)) >= TOTAL - PER_SENDER for r in recorders[:SENDERS]),
                     "every socket to receive every message")
        await asyncio.sleep(0.5)  # anything extra (a duplicate) would arrive now
        for i, recorder in enumerate(recorders):
            received = new(recorder)
            sender = i if i < SENDERS else None
            expected = set(by_seq) - ({m["seq"] for m in acks[sender]} if sender is not None else set())
            seqs = [m["seq"] for m in received]
            assert len(seqs) == len(set(seqs)) == len(expected), f"socket {i}: duplicates or misses"
            assert set(seqs) == expected, f"socket {i}: wrong messages"
            assert all(m == by_seq[m["seq"]] for m in received), f"socket {i}: payload differs from the ack"
            _assert_in_send_order(received, f"socket {i}")
    finally:
        await asyncio.gather(*(s.disconnect() for s in sockets), return_exceptions=True)

    response = await http.get(f"/conversations/{cid}", headers=auth_headers(others[0]["access_token"]))
    assert response.status_code == 200 and response.json()["last_seq"] == TOTAL
