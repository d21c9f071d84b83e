"""A worker's acks leave in pipelined groups (src/infra/redis_acks.py): every message acked by
many threads at once is gone from Redis, and an ack that met a connection error is sent again."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.errors import ConnectionClosed

from src.infra.redis_acks import GroupAckConsumer
from src.infra.tasks import create_broker


def _fetched(redis_url: str, n: int) -> tuple[Any, GroupAckConsumer, list[Any], str]:
    namespace = f"acks-{uuid.uuid4().hex[:8]}"
    broker = create_broker(redis_url, namespace=namespace)
    broker.declare_queue("q")
    for i in range(n):
        broker.enqueue(dramatiq.Message(queue_name="q", actor_name="a", args=(), kwargs={"i": i}, options={}))
    consumer = broker.consume("q", prefetch=n, timeout=100)
    assert isinstance(consumer, GroupAckConsumer)
    messages: list[Any] = []
    while len(messages) < n:
        message = next(consumer)
        if message is not None:
            messages.append(message)
    return broker, consumer, messages, namespace


def _left(redis_url: str, namespace: str) -> tuple[int, int]:
    """(messages still stored, messages still fetched-but-unacked) of the namespace's queue `q`."""
    client = redis.Redis.from_url(redis_url)
    unacked = sum(client.scard(key) for key in client.scan_iter(f"{namespace}:__acks__.*"))
    return client.hlen(f"{namespace}:q.msgs"), unacked


def test_acks_from_many_threads_at_once_remove_every_message(redis_url: str) -> None:
    _, consumer, messages, namespace = _fetched(redis_url, 64)
    assert _left(redis_url, namespace) == (64, 64)
    threads = [threading.Thread(target=consumer.ack, args=(m,)) for m in messages]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert _left(redis_url, namespace) == (0, 0)
    assert consumer.outstanding_message_count == 0


def test_acks_after_redis_lost_its_scripts(redis_url: str) -> None:
    _, consumer, messages, namespace = _fetched(redis_url, 2)
    redis.Redis.from_url(redis_url).script_flush()
    consumer.ack(messages[0])
    consumer.ack(messages[1])
    assert _left(redis_url, namespace) == (0, 0)


def test_an_ack_that_met_a_connection_error_is_sent_with_the_next(redis_url: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    broker, consumer, messages, namespace = _fetched(redis_url, 3)
    real, calls = broker.ack_many, []

    def flaky(queue_name: str, ids: list[str]) -> None:
        calls.append(list(ids))
        if len(calls) == 1:
            raise redis.ConnectionError("down")
        real(queue_name, ids)

    monkeypatch.setattr(broker, "ack_many", flaky)
    with pytest.raises(ConnectionClosed):
        consumer.ack(messages[0])
    assert _left(redis_url, namespace) == (3, 3)
    consumer.ack(messages[1])  # Dramatiq would retry messages[0]'s ack; any next ack flushes it too
    assert _left(redis_url, namespace) == (1, 1)
    consumer.ack(messages[2])
    assert _left(redis_url, namespace) == (0, 0)
    assert calls[1] == [messages[0].options["redis_message_id"], messages[1].options["redis_message_id"]]
