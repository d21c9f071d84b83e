"""A small pool of plain asyncpg connections for single statements run outside any transaction.

The hot reads (`Database.fetch`) and the send's one statement run here. SQLAlchemy's pool cost more
CPU than the statement itself (checkout, check-in and two greenlet switches: ~130 µs per use on
the bench machine) and asyncpg's own `Pool` ~45 µs (a task for the acquire timeout, another for
the shielded release, the reset hook); here a free connection is a list pop and a push
(bench/README.md, "REST"). Only a wait for a connection (all busy, no more may be opened) costs a
future and a timer, and a wait longer than `timeout` raises `PoolTimeout`, which is SQLAlchemy's
pool timeout error: it is answered `overloaded` (HTTP 503, socket ack) like SQLAlchemy's own.

Connections are opened on demand up to `max_size`, the most recently used first (warm caches and
prepared statements). One that is closed, older than `recycle` seconds, or older than the last
`invalidate()` (a connection found dead: PostgreSQL restarted?) is replaced at checkout; one
returned in an unknown state (cancelled mid-statement, inside a transaction) is terminated.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

import asyncpg
from sqlalchemy import exc as sa_exc


class PoolTimeout(sa_exc.TimeoutError):
    """No connection came free within the pool's timeout (the process is busy, not broken)."""


class DriverPool:
    """asyncpg connections handed out one statement (or one short use) at a time."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], *, max_size: int,
                 timeout: float, recycle: float) -> None:
        self._connect = connect
        self._max_size = max_size
        self._timeout = timeout
        self._recycle = recycle
        self._idle: list[asyncpg.Connection] = []  # a stack: the warmest on top
        self._born: dict[asyncpg.Connection, float] = {}  # every open connection, idle or lent
        self._opening = 0
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._valid_after = 0.0  # connections opened before this are replaced (see invalidate)
        self._closed = False

    @property
    def size(self) -> int:
        """Connections open or being opened."""
        return len(self._born) + self._opening

    async def acquire(self) -> asyncpg.Connection:
        """A connection for the caller alone until `release`; `PoolTimeout` after waiting too long."""
        while True:
            if self._closed:
                raise asyncpg.InterfaceError("the connection pool is closed")
            while self._idle:
                conn = self._idle.pop()
                if self._usable(conn):
                    return conn
                self._drop(conn)
            if self.size < self._max_size:
                return await self._open()
            conn = await self._wait()
            if conn is not None:
                return conn
            # None: a place came free (a connection was dropped): look again.

    def release(self, conn: asyncpg.Connection) -> None:
        """Give a connection back after use; one left in an unknown state is terminated instead."""
        if self._closed or not self._usable(conn) or conn.is_in_transaction():
            self._drop(conn)
            return
        if not self._wake(conn):
            self._idle.append(conn)

    def discard(self, conn: asyncpg.Connection) -> None:
        """Terminate a lent connection instead of giving it back (failed or cancelled mid-use)."""
        self._drop(conn)

    def invalidate(self) -> None:
        """A connection was found dead: replace every connection opened before now as it comes back
        (as SQLAlchemy invalidates its pool), so a PostgreSQL restart costs each one retry at most."""
        self._valid_after = time.monotonic()
        idle, self._idle = self._idle, []
        for conn in idle:
            self._drop(conn)

    async def close(self) -> None:
        """Close the idle connections; lent ones are terminated when they come back."""
        self._closed = True
        while self._wake(None):
            pass
        idle, self._idle = self._idle, []
        for conn in idle:
            self._born.pop(conn, None)
            try:
                await conn.close(timeout=2)
            except Exception:  # already gone, or not answering: terminate it
                conn.terminate()

    def _usable(self, conn: asyncpg.Connection) -> bool:
        born = self._born.get(conn)
        return born is not None and born > self._valid_after and not conn.is_closed() \
            and time.monotonic() - born < self._recycle

    def _drop(self, conn: asyncpg.Connection) -> None:
        if self._born.pop(conn, None) is not None:
            self._wake(None)
        if not conn.is_closed():
            conn.terminate()

    def _wake(self, conn: asyncpg.Connection | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    async def _open(self) -> asyncpg.Connection:
        self._opening += 1
        try:
            conn = await self._connect()
        except BaseException:
            self._opening -= 1
            self._wake(None)  # the place is free again for a waiter to try
            raise
        self._opening -= 1
        self._born[conn] = time.monotonic()
        return conn

    async def _wait(self) -> asyncpg.Connection | None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[asyncpg.Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        # A bare timer failing the future: cheaper than `asyncio.timeout` (the bench waits often).
        timer = loop.call_later(self._timeout, self._expire, waiter)
        try:
            return await waiter
        except BaseException:
            # Cancelled, possibly just after being handed a connection (or a place): pass it on.
            if not waiter.done():
                waiter.cancel()
            elif not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()
                if handed is None:
                    self._wake(None)
                else:
                    self.release(handed)
            raise
        finally:
            timer.cancel()

    def _expire(self, waiter: asyncio.Future[asyncpg.Connection | None]) -> None:
        if not waiter.done():
            waiter.set_exception(PoolTimeout(
                f"no database connection came free within {self._timeout} s ({self._max_size} open)"))
