"""The worker-side group commit of notification jobs (coalesce.py)."""

from __future__ import annotations

import asyncio

import pytest

from src.infra.coalesce import Coalescer


async def test_jobs_arriving_during_a_batch_form_the_next_one() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def run(items: list[int]) -> None:
        batches.append(items)
        if len(batches) == 1:
            await gate.wait()

    coalescer: Coalescer[int] = Coalescer(run)
    first = asyncio.create_task(coalescer.submit([1]))
    await asyncio.sleep(0)
    others = [asyncio.create_task(coalescer.submit([i, i * 10])) for i in (2, 3)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *others)
    assert batches == [[1], [2, 20, 3, 30]]


async def test_a_failed_batch_fails_each_of_its_jobs_and_not_the_next() -> None:
    calls = 0

    async def run(items: list[int]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database down")

    coalescer: Coalescer[int] = Coalescer(run, max_batch=1)
    results = await asyncio.gather(coalescer.submit([1]), coalescer.submit([2]), return_exceptions=True)
    assert isinstance(results[0], RuntimeError) and results[1] is None
    with pytest.raises(RuntimeError):
        raise results[0]
