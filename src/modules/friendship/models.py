"""Tables of the friendship module (schema `friendship`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from src.infra.db import Base

SCHEMA = "friendship"


class FriendRequest(Base):
    """A pending request (resolved requests are deleted); one per unordered pair of users.

    Indexes (migration 0003): the unique pair above, (to_user_id, created_at DESC, id DESC) for
    incoming lists, (from_user_id, created_at DESC, id DESC) for outgoing lists.
    """

    __tablename__ = "friend_requests"
    __table_args__ = (
        CheckConstraint("from_user_id <> to_user_id", name="not_self"),
        Index("uq_friend_requests_pair", text("least(from_user_id, to_user_id)"),
              text("greatest(from_user_id, to_user_id)"), unique=True),
        Index("ix_friend_requests_incoming", "to_user_id", text("created_at DESC"), text("id DESC")),
        Index("ix_friend_requests_outgoing", "from_user_id", text("created_at DESC"), text("id DESC")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    from_user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    to_user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Friendship(Base):
    """Two users are friends; stored once per pair with `user_a < user_b` (the primary key).

    Indexes (migration 0003): (user_a, created_at DESC, user_b DESC) and (user_b, created_at DESC,
    user_a DESC), merged for the friends list.
    """

    __tablename__ = "friendships"
    __table_args__ = (
        CheckConstraint("user_a < user_b", name="ordered"),
        Index("ix_friendships_a_recent", "user_a", text("created_at DESC"), text("user_b DESC")),
        Index("ix_friendships_b_recent", "user_b", text("created_at DESC"), text("user_a DESC")),
        {"schema": SCHEMA},
    )

    user_a: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_b: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    requester_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    request_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
