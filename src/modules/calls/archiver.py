"""Ended calls written to history in batches, off the path of the event that ended them.

The live state already says "ended" (GET /calls/{id} reads it first), so history may lag a
moment: calls ended within `LINGER` seconds of each other share one transaction (three
statements and one commit, however many), and their archive marks go in one ZREM. Should this
process die first, or PostgreSQL fail, the archive sweep (CallService.archive_leftovers) writes
them later: every ended call stays in `calls:unarchived` until history holds it.
"""

from __future__ import annotations

import asyncio

import structlog

from src.modules.calls.history import CallHistory
from src.modules.calls.state import CallState
from src.modules.calls.store import CallStore

log = structlog.get_logger("chatty.calls")
LINGER = 0.2  # seconds: at 100 calls/s, 20 calls per transaction
BATCH = 200


class Archiver:
    """Collects ended calls; one background task writes them, a batch at a time."""

    def __init__(self, history: CallHistory, store: CallStore) -> None:
        self._history = history
        self._store = store
        self._pending: list[CallState] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, call: CallState) -> None:
        """Write `call` to history soon (in this process's event loop)."""
        self._pending.append(call)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="calls-archive")

    async def _run(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(LINGER)
                batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
                await self.write(batch)
        finally:
            self._task = None

    async def write(self, batch: list[CallState]) -> None:
        """Write `batch` now; a failure is logged and left to the archive sweep."""
        try:
            await self._history.archive_many(batch)
        except Exception as exc:
            log.warning("calls.archive_failed", calls=len(batch), error=repr(exc))
            return
        await self._store.archived(*(c.id for c in batch))
