"""PostgreSQL: the async engine, sessions, and the metadata each module's tables hang on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.expression import Executable

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base; each module puts its tables in its own schema (`__table_args__`)."""

    metadata = MetaData(naming_convention=NAMING)


class Database:
    """The engine and a session factory, built once by the composition root."""

    def __init__(self, url: str, *, pool_size: int = 40, pool_timeout: float = 30.0) -> None:
        self.engine: AsyncEngine = create_async_engine(
            # pre-ping: after a PostgreSQL restart a pooled connection is found dead and replaced
            # at checkout, instead of failing the first request made on it.
            # pool_timeout: a checkout waiting longer fails (sa TimeoutError, answered `overloaded`).
            url, pool_size=pool_size, max_overflow=pool_size // 4, pool_timeout=pool_timeout, pool_pre_ping=True,
            connect_args={"server_settings": {"application_name": "chatty", "jit": "off"}},
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

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
