"""The SQLAlchemy models and the migrated database describe the same schema (Alembic's autogenerate
comparison): a model changed without a migration, or a migration without its model, fails here."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import src.bootstrap  # noqa: F401  (imports every module, so every table is on the metadata)
from src.infra.db import Base

SCHEMAS = {"infra", "auth", "users", "blocks", "privacy", "follows", "friendship", "messaging", "presence",
           "calls", "media", "posts", "notifications"}


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    if type_ == "schema":
        return name in SCHEMAS
    if type_ == "table":
        return obj.schema in SCHEMAS
    return True


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={
        "include_schemas": True, "include_object": _ours, "compare_type": True,
        "compare_server_default": False})
    return list(compare_metadata(context, Base.metadata))


async def test_models_match_the_migrated_database(migrated_db: str) -> None:
    url = "postgresql+asyncpg://" + migrated_db.split("://", 1)[1]
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(_diff)
    finally:
        await engine.dispose()
    assert differences == [], "\n".join(map(str, differences))
