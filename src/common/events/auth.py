"""Events of the auth module."""

from __future__ import annotations

import uuid

from src.common.events.base import Event


class SessionsRevoked(Event, frozen=True, kw_only=True):
    """Sessions ended (sign-out, revoke, password change or reset, refresh reuse)."""

    name = "auth.sessions_revoked.v1"
    user_id: uuid.UUID
    session_ids: list[uuid.UUID]
    reason: str
