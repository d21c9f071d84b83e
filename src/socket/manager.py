"""The Socket.IO client manager: python-socketio's Redis manager with a sid → rooms index.

python-socketio's `basic_disconnect` finds a socket's rooms by copying and scanning every room of
the namespace (a `bidict` membership test each): O(sockets) per disconnect. With 10,000 sockets
(three rooms each: its own, `user:…`, `session:…`) closing together, the event loop was blocked
for over a minute (bench/messaging.py --idle). Keeping each sid's rooms makes a disconnect
touch only those rooms; everything else is the library's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import socketio

from src.infra import metrics
from src.infra.redis_batch import PipelineBatcher
from src.socket.peers import Peers

_Key = tuple[str, str]  # (namespace, sid)
# The library doubles its wait between pub/sub reconnects up to 60 s: after a Redis restart an API
# process then hears no other process's emits for up to a minute. Reconnect within 2 s instead.
MAX_RESUBSCRIBE_WAIT = 2.0
LISTEN_CHUNK = 8  # pub/sub messages handled per event-loop turn at most


class RoomIndexedRedisManager(socketio.AsyncRedisManager):
    """`AsyncRedisManager` whose disconnects and room listings cost O(the socket's rooms)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sid_rooms: dict[_Key, set[str | None]] = {}
        self.peers = Peers()  # solo mode: no other API process listens, emits are not published (peers.py)
        self._batch_epoch = 0
        self._publisher = PipelineBatcher(lambda: self.redis, "socketio-publish", on_results=self._published)
        self._background: set[asyncio.Task[Any]] = set()

    async def _publish(self, data: dict[str, Any]) -> None:
        """Publish through the batch publisher, encoded once with msgspec, `method` and `host_id` first
        (so that every process skips its own emits without decoding them). A solo process delivers
        its emits (without ack callback) locally only: no other API process would receive them."""
        if data.get("method") == "emit" and data.get("callback") is None and self.skips_publish():
            return
        if not self.connected:
            self._redis_connect()
        ordered = {"method": data.get("method"), "host_id": data.get("host_id"), **data}
        payload = msgspec.json.encode(ordered)
        await self._publisher.run(lambda pipe: self._fill_publish(pipe, payload))

    def skips_publish(self) -> bool:
        """Whether an emit without ack callback is delivered locally only (solo mode), counted as such."""
        if not self.peers.solo:
            return False
        metrics.EMITS_UNPUBLISHED.inc()
        if self.peers.due_recheck():
            self._spawn(self._recheck_listeners())
        return True

    def _fill_publish(self, pipe: Any, payload: bytes) -> None:
        self._batch_epoch = self.peers.epoch  # the batch is written right after its fills ran
        pipe.publish(self.channel, payload)

    def _published(self, counts: list[Any]) -> None:
        self.peers.on_published(self._batch_epoch, [c if isinstance(c, int) else -1 for c in counts])

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _recheck_listeners(self) -> None:
        epoch = self.peers.epoch
        try:
            listeners = dict(await self.redis.pubsub_numsub(self.channel)).get(self.channel.encode(), 0)
        except Exception as exc:  # solo mode ends on the next hello or reconnect anyway
            self._get_logger().warning(f"Cannot count pub/sub listeners: {exc!r}")
            return
        self.peers.on_numsub(epoch, int(listeners))

    async def _say_hello(self, epoch: int) -> None:
        """Tell the other API processes this one listens now; count how many should answer."""
        try:
            listeners = await self.redis.publish(self.channel, msgspec.json.encode(
                {"method": "hello", "host_id": self.host_id}))
        except Exception as exc:
            self._get_logger().warning(f"Cannot publish hello: {exc!r}")
            self.peers.on_hello_counted(1)  # nobody will answer: take sockets (publishing everything)
            return
        if epoch == self.peers.epoch:
            self.peers.on_hello_counted(int(listeners))

    async def _handle_peer_message(self, data: dict[str, Any]) -> None:
        if data.get("host_id") == self.host_id:
            return
        if data["method"] == "hello":
            self.peers.on_peer_hello()  # before the welcome: every later emit is published
            await self._publisher.run(lambda pipe: pipe.publish(self.channel, msgspec.json.encode(
                {"method": "welcome", "host_id": self.host_id, "to": data.get("host_id")})))
        elif data.get("to") == self.host_id:
            self.peers.on_welcome()

    async def wait_joined(self) -> None:
        """Before a socket joins its rooms: every other API process publishes its emits (peers.py)."""
        await self.peers.wait_joined()

    async def _listen(self) -> AsyncIterator[Any]:
        """The channel's messages, decoded with msgspec; this process's own emits are skipped undecoded
        (python-socketio would decode them, then drop them). The loop is yielded every `LISTEN_CHUNK`
        messages: what Redis already sent is read without a pause, and a backlog of large messages
        (a group emit names 1,000 rooms) held the loop for 20-30 ms in one callback (bench/loopmon.py)."""
        own = f'{{"method":"emit","host_id":"{self.host_id}"'.encode()
        count = 0
        async for data in super()._listen():
            count += 1
            if count % LISTEN_CHUNK == 0:
                await asyncio.sleep(0)
            if isinstance(data, bytes) and data.startswith(own):
                continue
            try:
                decoded = msgspec.json.decode(data)
            except msgspec.DecodeError:
                yield data  # the library tries its own decoder and ignores what it cannot read
                continue
            if isinstance(decoded, dict) and decoded.get("method") in ("hello", "welcome"):
                await self._handle_peer_message(decoded)
                continue
            yield decoded

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        """The library's pub/sub loop, with the wait between reconnects capped at 2 s."""
        wait = 0.25
        while True:
            try:
                self._redis_connect()
                self.pubsub.ignore_subscribe_messages = False  # the confirmation starts the hello
                await self.pubsub.subscribe(self.channel)
                wait = 0.25
                async for message in self.pubsub.listen():
                    if message.get("type") == "subscribe":  # confirmed: now say hello (peers.py)
                        self._spawn(self._say_hello(self.peers.on_subscribed()))
                    yield message
            except Exception as exc:
                self.peers.on_unsubscribed()
                self._get_logger().error(f"Cannot receive from redis... retrying in {wait} secs",
                                         extra={"redis_exception": str(exc)})
                await asyncio.sleep(wait)
                wait = min(wait * 2, MAX_RESUBSCRIBE_WAIT)

    def basic_enter_room(self, sid: str, namespace: str, room: str | None, eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._sid_rooms.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: str | None) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self._sid_rooms.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._sid_rooms[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        for room in list(self._sid_rooms.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        # The rest of BaseManager.basic_disconnect, whose room scan this replaces.
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[str]:
        return [room for room in self._sid_rooms.get((namespace, sid), ()) if room is not None]
