"""Events of the blocks module."""

from __future__ import annotations

import uuid

from src.common.events.base import Event


class UserBlocked(Event, frozen=True, kw_only=True):
    """`blocker_id` blocked `blocked_id`: one-way in who did it, two-way in effect."""

    name = "blocks.user_blocked.v1"
    blocker_id: uuid.UUID
    blocked_id: uuid.UUID


class UserUnblocked(Event, frozen=True, kw_only=True):
    """`blocker_id` lifted their block of `blocked_id`; nothing is restored automatically."""

    name = "blocks.user_unblocked.v1"
    blocker_id: uuid.UUID
    blocked_id: uuid.UUID
