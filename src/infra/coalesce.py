"""Group commit on one event loop: items submitted while a batch runs form the next one.

Concurrent callers (a worker's jobs of one kind, an API's sends writing to Redis) each hand their
items to a `Coalescer` and wait for the batch that carried them. The first submitter starts a
batch at once (no linger, so an idle process adds no latency); whatever arrives while it runs is
taken together by the next run. A failed batch fails every caller in it (a worker's Dramatiq
jobs are then retried each: their batch functions are idempotent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Runs `run(items)` for the items of every caller waiting, at most one run at a time."""

    def __init__(self, run: Callable[[list[T]], Awaitable[None]], *, max_batch: int = 500) -> None:
        self._run = run
        self._max = max_batch
        self._waiting: list[tuple[list[T], asyncio.Future[None]]] = []
        self._busy = False
        self._task: asyncio.Task[None] | None = None  # a reference, so the loop does not drop it

    async def submit(self, items: list[T]) -> None:
        """Have `items` handled in a batch; returns when that batch is done (raises its error)."""
        if not items:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, future))
        if not self._busy:
            self._busy = True
            self._task = asyncio.get_running_loop().create_task(self._drain())
        await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                taken: list[tuple[list[T], asyncio.Future[None]]] = []
                size = 0
                while self._waiting and (not taken or size + len(self._waiting[0][0]) <= self._max):
                    entry = self._waiting.pop(0)
                    taken.append(entry)
                    size += len(entry[0])
                try:
                    await self._run([item for items, _ in taken for item in items])
                except BaseException as exc:
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for _, future in taken:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._busy = False
            leftover, self._waiting = self._waiting, []  # only when the loop was cancelled
            for _, future in leftover:
                if not future.done():
                    future.set_exception(RuntimeError("batch cancelled"))
