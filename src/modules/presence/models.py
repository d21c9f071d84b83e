"""Tables of the presence module (schema `presence`)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Table
from sqlalchemy.dialects.postgresql import UUID

from src.infra.db import Base

last_seen = Table(
    "last_seen", Base.metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),  # when they last went offline
    schema="presence",
)
