"""Per-connection asyncio primitives without the deques they allocate up front.

Each `collections.deque` costs ~760 bytes, even empty; an `asyncio.Queue` makes four (items,
getters, putters and its `join()` event's waiters), an `asyncio.Event` one. A websocket kept two
queues and an event (Engine.IO's send queue, uvicorn's receive queue, uvicorn's `writable`):
~6.8 KB per idle socket. These keep the same interface with lists and create what they need
on first use.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any


class LightQueue:
    """An unbounded `asyncio.Queue` (get/put/task_done/join and their `_nowait` forms) for one consumer
    or a few; `_getters` is asyncio.Queue's name for the waiting get() futures (read by direct_send)."""

    __slots__ = ("_finished", "_getters", "_items", "_unfinished")
    maxsize = 0

    def __init__(self) -> None:
        self._items: collections.deque[Any] | None = None
        self._getters: list[asyncio.Future[None]] = []
        self._unfinished = 0
        self._finished: asyncio.Event | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return False

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)
        self._unfinished += 1
        if self._finished is not None:
            self._finished.clear()
        self._wake_one()

    def peek(self) -> Any:
        """The first item, not taken (None when empty)."""
        return self._items[0] if self._items else None

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        if not self._items:
            self._items = None  # an idle socket keeps no deque
        return item

    async def get(self) -> Any:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if getter in self._getters:
                    self._getters.remove(getter)
                elif self._items:  # woken, then cancelled: pass the wake-up on
                    self._wake_one()
                raise
        return self.get_nowait()

    def _wake_one(self) -> None:
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                break

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._finished is not None:
            self._finished.set()

    async def join(self) -> None:
        if self._unfinished > 0:
            if self._finished is None:
                self._finished = asyncio.Event()
            await self._finished.wait()


class ListEvent(asyncio.Event):
    """`asyncio.Event` whose waiters are a list (its methods only append, iterate and remove)."""

    def __init__(self) -> None:
        super().__init__()
        self._waiters = []  # type: ignore[assignment]
