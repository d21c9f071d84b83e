"""The outbox and inbox tables (schema `infra`): durable events, once-only listeners."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID

from src.infra.db import Base

outbox = Table(
    "outbox", Base.metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("dispatched_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("dead_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Index("ix_outbox_due", "next_attempt_at", "id", postgresql_where=text("dispatched_at IS NULL AND dead_at IS NULL")),
    schema="infra",
)

inbox = Table(
    "inbox", Base.metadata,
    Column("listener", String(200), primary_key=True),
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("handled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema="infra",
)
