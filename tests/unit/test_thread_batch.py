"""Jobs from Dramatiq worker threads run in batches on the event loop (src/infra/thread_batch.py)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq.asyncio import EventLoopThread, set_event_loop_thread

from src.infra.thread_batch import ThreadBatcher


@pytest.fixture
def loop_thread() -> Iterator[EventLoopThread]:
    thread = EventLoopThread(logging.getLogger("test"))
    thread.start(timeout=5)
    set_event_loop_thread(thread)
    yield thread
    set_event_loop_thread(None)
    thread.stop()


def _in_threads(batcher: ThreadBatcher, jobs: list[dict[str, Any]]) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = [None] * len(jobs)

    def one(i: int) -> None:
        try:
            batcher.submit(jobs[i])
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return outcomes


def test_jobs_waiting_while_a_batch_runs_run_together(loop_thread: EventLoopThread) -> None:
    batches: list[list[int]] = []
    first_running, release = threading.Event(), threading.Event()

    async def run(jobs: list[dict[str, Any]]) -> None:
        batches.append([job["n"] for job in jobs])
        if len(batches) == 1:
            first_running.set()
            await asyncio.to_thread(release.wait, 5)

    batcher = ThreadBatcher(run)
    first = threading.Thread(target=batcher.submit, args=({"n": 0},))
    first.start()
    assert first_running.wait(5)
    late = threading.Thread(target=lambda: _in_threads(batcher, [{"n": i} for i in range(1, 6)]))
    late.start()
    while sum(len(b.jobs) for b in batcher._waiting) < 5:  # all five queued
        threading.Event().wait(0.01)
    release.set()
    first.join(5)
    late.join(5)
    assert batches[0] == [0]
    assert sorted(batches[1]) == [1, 2, 3, 4, 5]
    assert len(batches) == 2


def test_a_failed_batch_fails_each_of_its_jobs_and_not_the_next(loop_thread: EventLoopThread) -> None:
    calls = 0

    async def run(jobs: list[dict[str, Any]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database down")

    batcher = ThreadBatcher(run, max_jobs=1)
    with pytest.raises(RuntimeError, match="database down"):
        batcher.submit({"n": 1})
    batcher.submit({"n": 2})
    assert calls == 2


def test_batches_hold_at_most_max_jobs(loop_thread: EventLoopThread) -> None:
    sizes: list[int] = []

    async def run(jobs: list[dict[str, Any]]) -> None:
        sizes.append(len(jobs))
        await asyncio.sleep(0.01)

    assert _in_threads(ThreadBatcher(run, max_jobs=3), [{"n": i} for i in range(20)]) == [None] * 20
    assert sum(sizes) == 20
    assert max(sizes) <= 3


def test_with_max_running_a_batch_runs_beside_one_that_waits(loop_thread: EventLoopThread) -> None:
    started: list[int] = []
    release = threading.Event()

    async def run(jobs: list[dict[str, Any]]) -> None:
        started.append(jobs[0]["n"])
        if jobs[0]["n"] == 0:  # waits on the network, say: the next batch must not wait for it
            await asyncio.to_thread(release.wait, 5)

    batcher = ThreadBatcher(run, max_running=2)
    first = threading.Thread(target=batcher.submit, args=({"n": 0},))
    first.start()
    while not started:
        threading.Event().wait(0.01)
    batcher.submit({"n": 1})  # returns while batch 0 still runs
    assert not release.is_set() and started == [0, 1]
    release.set()
    first.join(5)
    assert not first.is_alive()
