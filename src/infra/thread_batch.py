"""Jobs handed from Dramatiq's worker threads to the event loop in batches, one wake per batch.

Dramatiq's AsyncIO bridge costs every message a task on the loop, a chained concurrent future
and a thread wake-up through it. For small, frequent jobs of one kind (a push) that bridge costs
more than the job: here a worker thread appends its job's arguments to the open batch and, if no
start is scheduled, schedules one on the loop; a start runs every waiting batch (up to
`max_jobs` each) as its own task while fewer than `max_running` run, and wakes each batch's
threads with one event. Jobs arriving meanwhile form the next batch, which starts when one
finishes. One batch at a time keeps batches large (pushes' default, measured best against a near
FCM); a few side by side keep the worker busy through long network waits (a far FCM). A failed batch
fails every job in it (Dramatiq retries each: the batch function must be idempotent, and safe to
run beside another batch). The waiting thread wakes every 0.1 s so that Dramatiq's time limit and
shutdown interrupts reach it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread

from src.infra.tasks import TaskSpec

_WAKE_S = 0.1


class _Batch:
    """The jobs of one run and their shared outcome."""

    __slots__ = ("done", "error", "jobs")

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.done = threading.Event()
        self.error: BaseException | None = None


class ThreadBatcher:
    """`submit(kwargs)` from a worker thread; `run([kwargs, …])` on the worker's event loop, up to
    `max_running` batches at once."""

    def __init__(self, run: Callable[[list[dict[str, Any]]], Awaitable[None]], *, max_jobs: int = 500,
                 max_running: int = 1) -> None:
        self._run = run
        self._max = max_jobs
        self._max_running = max(1, max_running)
        self._lock = threading.Lock()
        self._waiting: list[_Batch] = []  # the open batch is the last one
        self._scheduled = False  # a `_start` is on its way to the loop
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()  # references, so the loop does not drop them

    def submit(self, kwargs: dict[str, Any]) -> None:
        """Run this job in the next batch; return when that batch is done (raise its error)."""
        thread = get_event_loop_thread()
        if thread is None:
            raise RuntimeError("no event loop thread: is Dramatiq's AsyncIO middleware installed?")
        with self._lock:
            if not self._waiting or len(self._waiting[-1].jobs) >= self._max:
                self._waiting.append(_Batch())
            batch = self._waiting[-1]
            batch.jobs.append(kwargs)
            if not self._scheduled and self._running < self._max_running:
                self._scheduled = True
                thread.loop.call_soon_threadsafe(self._start, thread.loop)
        while not batch.done.wait(_WAKE_S):
            if not thread.loop.is_running():
                raise RuntimeError("event loop stopped before the batch ran")
        if batch.error is not None:
            raise batch.error

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._scheduled = False
            while self._waiting and self._running < self._max_running:
                batch = self._waiting.pop(0)
                self._running += 1
                task = loop.create_task(self._one(batch, loop))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _one(self, batch: _Batch, loop: asyncio.AbstractEventLoop) -> None:
        try:
            await self._run(batch.jobs)
        except BaseException as exc:  # handed to every waiting thread
            batch.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            batch.done.set()
            with self._lock:
                self._running -= 1
            self._start(loop)  # the batches that waited for a free slot

    @staticmethod
    def actor(broker: dramatiq.Broker, spec: TaskSpec, context: Callable[[], Any]) -> dramatiq.Actor[Any, Any]:
        """The Dramatiq actor of a spec with `batch_fn`: a plain function on the worker thread that
        waits for `batch_fn(context(), [kwargs, …])` of its batch."""
        batch_fn = spec.batch_fn
        assert batch_fn is not None
        batcher = ThreadBatcher(lambda jobs: batch_fn(context(), jobs), max_running=spec.batches_running)

        def run(**kwargs: Any) -> None:
            batcher.submit(kwargs)

        run.__name__ = spec.name.replace(".", "_")
        return dramatiq.actor(actor_name=spec.name, queue_name=spec.queue, broker=broker,
                              max_retries=spec.max_retries, min_backoff=spec.min_backoff_ms,
                              max_backoff=spec.max_backoff_ms, time_limit=spec.time_limit_ms)(run)
