"""Tables of the calls module (schema `calls`): the history of ended calls, as Core tables."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, Table, text
from sqlalchemy.dialects.postgresql import UUID

from src.infra.db import Base

SCHEMA = "calls"
_meta = Base.metadata

calls = Table(
    "calls", _meta,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("kind", String(10), nullable=False),  # direct | group
    Column("media", String(10), nullable=False),  # audio | video
    Column("conversation_id", UUID(as_uuid=True)),
    Column("caller_id", UUID(as_uuid=True), nullable=False),
    Column("end_reason", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("answered_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True), nullable=False),
    Column("duration_s", Integer),
    schema=SCHEMA,
)

# One row per invited user (the caller included); `created_at` repeats the call's so that a
# user's history is one index range: (user_id, created_at DESC, call_id DESC).
participants = Table(
    "participants", _meta,
    Column("call_id", UUID(as_uuid=True), ForeignKey(calls.c.id, ondelete="CASCADE"), primary_key=True),
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("position", Integer, nullable=False),  # the caller is 0
    Column("state", String(12), nullable=False),  # left | rejected | missed | busy | failed
    Column("joined_at", DateTime(timezone=True)),
    Column("left_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_participants_user_history", "user_id", text("created_at DESC"), text("call_id DESC")),
    schema=SCHEMA,
)
