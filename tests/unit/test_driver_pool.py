"""The driver pool lends each connection to one user at a time, opens at most `max_size`, answers a
wait past its timeout with SQLAlchemy's pool timeout (answered `overloaded`), and never lends a
closed, invalidated or half-used connection again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc

from src.infra.admission import is_overload
from src.infra.driver_pool import DriverPool, PoolTimeout


class FakeConnection:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False
        self.in_transaction = False
        self.terminated = False

    def is_closed(self) -> bool:
        return self.closed

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    def terminate(self) -> None:
        self.closed = self.terminated = True

    async def close(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (asyncpg's signature)
        self.closed = True


class Opener:
    def __init__(self) -> None:
        self.opened: list[FakeConnection] = []

    async def __call__(self) -> Any:
        await asyncio.sleep(0)
        self.opened.append(FakeConnection(len(self.opened)))
        return self.opened[-1]


def pool(opener: Opener, max_size: int = 2, timeout: float = 0.05, recycle: float = 3600) -> DriverPool:
    return DriverPool(opener, max_size=max_size, timeout=timeout, recycle=recycle)


async def test_opens_on_demand_up_to_the_limit_and_reuses_the_warmest() -> None:
    opener = Opener()
    drivers = pool(opener)
    first, second = await drivers.acquire(), await drivers.acquire()
    assert first is not second and len(opener.opened) == 2
    drivers.release(first)
    drivers.release(second)
    assert await drivers.acquire() is second  # the last one given back
    assert len(opener.opened) == 2


async def test_a_wait_past_the_timeout_is_a_pool_timeout_answered_overloaded() -> None:
    drivers = pool(Opener(), max_size=1)
    await drivers.acquire()
    with pytest.raises(PoolTimeout) as raised:
        await drivers.acquire()
    assert isinstance(raised.value, sa_exc.TimeoutError) and is_overload(raised.value)


async def test_a_released_connection_goes_to_the_first_waiter() -> None:
    drivers = pool(Opener(), max_size=1, timeout=5)
    held = await drivers.acquire()
    waiters = [asyncio.create_task(drivers.acquire()) for _ in range(2)]
    await asyncio.sleep(0.01)
    drivers.release(held)
    assert await waiters[0] is held
    assert not waiters[1].done()
    drivers.release(held)
    assert await waiters[1] is held


async def test_a_cancelled_waiter_passes_its_connection_on() -> None:
    drivers = pool(Opener(), max_size=1, timeout=5)
    held = await drivers.acquire()
    cancelled = asyncio.create_task(drivers.acquire())
    patient = asyncio.create_task(drivers.acquire())
    await asyncio.sleep(0.01)
    drivers.release(held)  # handed to `cancelled` ...
    cancelled.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await patient is held


async def test_closed_discarded_and_mid_transaction_connections_are_replaced() -> None:
    opener = Opener()
    drivers = pool(opener, max_size=1, timeout=5)
    first = await drivers.acquire()
    first.closed = True
    drivers.release(first)
    second = await drivers.acquire()
    assert second is not first
    second.in_transaction = True
    drivers.release(second)
    assert second.terminated
    third = await drivers.acquire()
    waiter = asyncio.create_task(drivers.acquire())
    await asyncio.sleep(0.01)
    drivers.discard(third)  # the place is free: the waiter opens a new connection
    fourth = await waiter
    assert third.terminated and fourth not in (first, second, third)
    assert len(opener.opened) == 4 and drivers.size == 1


async def test_invalidate_replaces_every_connection_opened_before_it() -> None:
    opener = Opener()
    drivers = pool(opener, max_size=2)
    idle, lent = await drivers.acquire(), await drivers.acquire()
    drivers.release(idle)
    drivers.invalidate()  # e.g. one was found dead: PostgreSQL restarted
    assert idle.terminated
    drivers.release(lent)
    assert lent.terminated
    fresh = await drivers.acquire()
    assert fresh not in (idle, lent) and drivers.size == 1


async def test_a_failed_open_frees_its_place() -> None:
    drivers = pool(Opener(), max_size=1)

    async def refuse() -> Any:
        raise OSError("connection refused")

    drivers._connect = refuse  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await drivers.acquire()
    assert drivers.size == 0
