"""Tables of the follows module (schema `follows`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from src.infra.db import Base

SCHEMA = "follows"


class Follow(Base):
    """A directed edge: `follower_id` follows `followee_id`; the primary key keeps it unique.

    Indexes (migration 0002): (followee_id, created_at DESC, follower_id DESC) for followers
    lists, (follower_id, created_at DESC, followee_id DESC) for following lists.
    """

    __tablename__ = "follows"
    __table_args__ = (
        CheckConstraint("follower_id <> followee_id", name="not_self"),
        Index("ix_follows_followers_recent", "followee_id", text("created_at DESC"), text("follower_id DESC")),
        Index("ix_follows_following_recent", "follower_id", text("created_at DESC"), text("followee_id DESC")),
        {"schema": SCHEMA},
    )

    follower_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    followee_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
