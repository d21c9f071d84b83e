"""PostgreSQL: the async engine, sessions, and the metadata each module's tables hang on."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import MetaData, event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.expression import Executable

from src.infra.driver_pool import DriverPool

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# A pooled connection older than this is replaced at checkout (idle-timeout firewalls, memory).
POOL_RECYCLE_SECONDS = 1800
# What a connection the server ended raises (its last words, or the closed socket; an idle
# connection whose backend was terminated can also fail its next statement with asyncpg's
# InternalClientError "cannot switch to state …").
_DEAD_CONNECTION: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError, asyncpg.CannotConnectNowError, asyncpg.InternalClientError, OSError)
_FETCH_ATTEMPTS = 3
_SERVER_SETTINGS = {"application_name": "chatty", "jit": "off"}


def _json_decoder(value: bytes) -> Any:
    return json.loads(value.decode())


def _jsonb_encoder(value: str) -> bytes:
    return b"\x01" + value.encode()  # jsonb's binary format: a version byte, then the text


def _jsonb_decoder(value: bytes) -> Any:
    return json.loads(value[1:].decode())


class Base(DeclarativeBase):
    """Declarative base; each module puts its tables in its own schema (`__table_args__`)."""

    metadata = MetaData(naming_convention=NAMING)


def _refuse_closed(dbapi_connection: Any) -> None:
    """A connection the server closed (PostgreSQL restarted, backend terminated) is replaced.
    asyncpg notices the peer's close as soon as the event loop reads it, so this costs no round
    trip, unlike `pool_pre_ping` (BEGIN, `;`, ROLLBACK: three)."""
    raw = getattr(dbapi_connection, "_connection", None)
    if raw is not None and raw.is_closed():
        raise exc.DisconnectionError("the server closed this pooled connection")


class Database:
    """The engine and a session factory (the ORM, transactions), and a pool of plain asyncpg
    connections for single statements (`fetch`, `driver_connection`), built once by the composition
    root. Both pools open connections on demand and wait at most `pool_timeout` for a free one."""

    def __init__(self, url: str, *, pool_size: int = 40, pool_timeout: float = 30.0,
                 driver_pool_size: int = 20) -> None:
        self.engine: AsyncEngine = create_async_engine(
            # pool_timeout: a checkout waiting longer fails (sa TimeoutError, answered `overloaded`).
            url, pool_size=pool_size, max_overflow=pool_size // 4, pool_timeout=pool_timeout,
            pool_recycle=POOL_RECYCLE_SECONDS, connect_args={"server_settings": _SERVER_SETTINGS},
        )
        # A connection that dies between checkout and use fails that one statement; SQLAlchemy then
        # invalidates the whole pool (every connection older than the failure is replaced). The two
        # pools share a server: a dead connection found in either replaces the other's older ones.
        self._driver_failed_at = 0.0  # time.time() of the last dead driver connection
        event.listen(self.engine.sync_engine.pool, "checkout", self._on_checkout)
        event.listen(self.engine.sync_engine.pool, "invalidate", self._on_invalidate)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        _, self._connect_kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        self.driver = DriverPool(self._connect_driver, max_size=driver_pool_size, timeout=pool_timeout,
                                 recycle=POOL_RECYCLE_SECONDS)

    def _on_checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        _refuse_closed(dbapi_connection)
        if record.starttime < self._driver_failed_at:
            raise exc.DisconnectionError("opened before a connection was found dead")

    def _on_invalidate(self, _dbapi_connection: Any, _record: Any, error: BaseException | None) -> None:
        if error is not None and not isinstance(error, exc.DisconnectionError):  # not our own checks
            self.driver.invalidate()

    def _driver_connection_died(self) -> None:
        self._driver_failed_at = time.time()
        self.driver.invalidate()

    async def _connect_driver(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(**self._connect_kwargs, server_settings=_SERVER_SETTINGS)
        try:  # JSON as SQLAlchemy's dialect sets it up: parsed on the way out, text on the way in
            await conn.set_type_codec("json", encoder=str.encode, decoder=_json_decoder, schema="pg_catalog",
                                      format="binary")
            await conn.set_type_codec("jsonb", encoder=_jsonb_encoder, decoder=_jsonb_decoder,
                                      schema="pg_catalog", format="binary")
        except BaseException:
            conn.terminate()
            raise
        return conn

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A plain asyncpg connection of the driver pool, outside any transaction (each statement
        is its own): for hot statements, past SQLAlchemy's execution path and pool. A connection
        that fails at the connection level, or is left mid-statement, is not reused."""
        conn = await self.driver.acquire()
        try:
            yield conn
        except _DEAD_CONNECTION:
            self._driver_connection_died()
            self.driver.discard(conn)
            raise
        except asyncpg.PostgresError:  # the statement failed; the connection is fine
            self.driver.release(conn)
            raise
        except BaseException:  # cancelled mid-statement, or something else: state unknown
            self.driver.discard(conn)
            raise
        self.driver.release(conn)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Rows of one read-only statement (`$1` placeholders) on a driver-pool connection. A
        connection found dead (PostgreSQL restarted, backend terminated) is discarded and the
        statement run once more on another, as `pool_pre_ping` would have."""
        driver = self.driver
        for attempt in range(_FETCH_ATTEMPTS):
            conn = await driver.acquire()
            try:  # driver_connection's rules, inline: this is the hot path
                rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            except _DEAD_CONNECTION:
                self._driver_connection_died()
                driver.discard(conn)
                if attempt == _FETCH_ATTEMPTS - 1:
                    raise
                continue
            except asyncpg.PostgresError:
                driver.release(conn)
                raise
            except BaseException:
                driver.discard(conn)
                raise
            driver.release(conn)
            return rows
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
        await self.driver.close()
        await self.engine.dispose()
