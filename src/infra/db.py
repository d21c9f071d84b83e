"""PostgreSQL: the async engine, sessions, and the metadata each module's tables hang on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import MetaData, event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.expression import Executable
from sqlalchemy.util import greenlet_spawn

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# A pooled connection older than this is replaced at checkout (idle-timeout firewalls, memory).
POOL_RECYCLE_SECONDS = 1800
# What a connection the server ended raises (its last words, or the closed socket).
_DEAD_CONNECTION: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError, asyncpg.CannotConnectNowError, OSError)
_FETCH_ATTEMPTS = 3


class Base(DeclarativeBase):
    """Declarative base; each module puts its tables in its own schema (`__table_args__`)."""

    metadata = MetaData(naming_convention=NAMING)


def _refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout hook: a connection the server closed (PostgreSQL restarted, backend
    terminated) is replaced. asyncpg notices the peer's close as soon as the event loop reads
    it, so this costs no round trip, unlike `pool_pre_ping` (BEGIN, `;`, ROLLBACK: three)."""
    raw = getattr(dbapi_connection, "_connection", None)
    if raw is not None and raw.is_closed():
        raise exc.DisconnectionError("the server closed this pooled connection")


class Database:
    """The engine and a session factory, built once by the composition root."""

    def __init__(self, url: str, *, pool_size: int = 40, pool_timeout: float = 30.0) -> None:
        self.engine: AsyncEngine = create_async_engine(
            # pool_timeout: a checkout waiting longer fails (sa TimeoutError, answered `overloaded`).
            url, pool_size=pool_size, max_overflow=pool_size // 4, pool_timeout=pool_timeout,
            pool_recycle=POOL_RECYCLE_SECONDS,
            connect_args={"server_settings": {"application_name": "chatty", "jit": "off"}},
        )
        # A connection that dies between checkout and use fails that one statement; SQLAlchemy then
        # invalidates the whole pool (every connection older than the failure is replaced).
        event.listen(self.engine.sync_engine.pool, "checkout", _refuse_closed)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection's asyncpg connection, outside any transaction (each statement is its
        own). For hot statements: SQLAlchemy's execution path (greenlet, compiled cache, result
        rows) costs about twice the round trip's CPU for a one-row query. A connection that fails
        at the connection level is discarded instead of going back into the pool."""
        fairy = await greenlet_spawn(self.engine.sync_engine.pool.connect)
        try:
            yield fairy.driver_connection  # type: ignore[misc]
        except _DEAD_CONNECTION as error:
            fairy.invalidate(error)
            raise
        finally:
            await greenlet_spawn(fairy.close)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Rows of one read-only statement (`$1` placeholders) on `driver_connection`. A
        connection found dead (PostgreSQL restarted, backend terminated) is discarded and the
        statement run once more on another, as `pool_pre_ping` would have."""
        for attempt in range(_FETCH_ATTEMPTS):
            try:
                async with self.driver_connection() as conn:
                    return await conn.fetch(sql, *args)  # type: ignore[no-any-return]
            except _DEAD_CONNECTION:
                if attempt == _FETCH_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """The first row of `fetch`, or None."""
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    def session(self) -> AsyncSession:
        """A new session (the caller owns its transaction)."""
        return self.sessions()

    async def delete_in_batches(self, statement: Executable, params: dict[str, Any], batch: int = 5000) -> None:
        """Run a `DELETE ... LIMIT :batch` statement, one short transaction a batch, until done."""
        while True:
            async with self.engine.begin() as conn:
                deleted = (await conn.execute(statement, {**params, "batch": batch})).rowcount
            if deleted < batch:
                return

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
