"""Dramatiq's Redis broker whose consumers send their acks together (group commit).

Dramatiq acks each message from the worker thread that ran it: one Lua call and one Redis round
trip per message, and when a batch of jobs ends (src/infra/thread_batch.py) dozens of threads
make theirs at once, each on its own pooled connection. Here the first thread to ack becomes the
flusher: it sends every ack waiting, as one pipeline of Dramatiq's own `ack` calls, and again for
those that arrived meanwhile, until none is left; the others only append theirs and go on. An ack
not yet flushed when the process dies leaves its message to be redelivered, as a crash before
any ack always did (jobs are idempotent). A connection error puts the ids back and raises, so
Dramatiq retries that ack, which flushes them all.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis
from dramatiq.errors import ConnectionClosed


class GroupAckConsumer(_RedisConsumer):
    """A queue's consumer whose `ack` joins the next pipelined flush."""

    def __init__(self, broker: GroupAckRedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._flushing = False

    def ack(self, message: Any) -> None:
        self.queued_message_ids.discard(message.message_id)
        with self._lock:
            self._pending.append(message.options["redis_message_id"])
            if self._flushing:
                return
            self._flushing = True
        self._flush()

    def _flush(self) -> None:
        while True:
            with self._lock:
                ids, self._pending = self._pending, []
                if not ids:
                    self._flushing = False
                    return
            try:
                self.broker.ack_many(self.queue_name, ids)
            except BaseException as exc:
                with self._lock:
                    self._pending[:0] = ids
                    self._flushing = False
                if isinstance(exc, redis.ConnectionError):
                    raise ConnectionClosed(exc) from None
                raise

    def close(self) -> None:
        try:
            with self._lock:
                idle = not self._flushing and bool(self._pending)
                if idle:
                    self._flushing = True
            if idle:
                self._flush()
        except ConnectionClosed:
            pass  # redelivered later, as any unacked message
        finally:
            super().close()


class GroupAckRedisBroker(RedisBroker):
    """RedisBroker with `GroupAckConsumer`s."""

    @property
    def consumer_class(self) -> type[GroupAckConsumer]:
        return GroupAckConsumer

    def ack_many(self, queue_name: str, message_ids: list[str]) -> None:
        """Dramatiq's `ack` of each message id, in one pipeline (one round trip)."""
        try:
            self._ack_pipeline(queue_name, message_ids)
        except redis.exceptions.NoScriptError:  # Redis lost its scripts (restarted, flushed)
            self.client.script_load(self.scripts["dispatch"].script)
            self._ack_pipeline(queue_name, message_ids)

    def _ack_pipeline(self, queue_name: str, message_ids: list[str]) -> None:
        # EVALSHA itself: a Script in a pipeline asks SCRIPT EXISTS first, a second round trip.
        sha, now = self.scripts["dispatch"].sha, current_millis()
        pipe = self.client.pipeline(transaction=False)
        for message_id in message_ids:
            pipe.evalsha(sha, 1, self.namespace, "ack", now, queue_name, self.broker_id, self.heartbeat_timeout,
                         self.dead_message_ttl, self._should_do_maintenance("ack"), self._max_unpack_size(),
                         message_id)
        pipe.execute()
