"""Permission queries answered by the privacy module (cached in Redis, PostgreSQL as truth)."""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec

from src.common.queries.base import Query

DenyReason = Literal["blocked", "not_allowed"]


class Decision(msgspec.Struct, frozen=True):
    """An answer to "may actor do this to target?"; `reason` says why not."""

    allowed: bool
    reason: DenyReason | None = None


class CanMessage(Query[Decision], frozen=True):
    """May `actor_id` send a message to `target_id`?"""

    actor_id: uuid.UUID
    target_id: uuid.UUID


class CanCall(Query[Decision], frozen=True):
    """May `actor_id` call `target_id`?"""

    actor_id: uuid.UUID
    target_id: uuid.UUID


class CanViewProfile(Query[Decision], frozen=True):
    """May `actor_id` see `target_id`'s profile?"""

    actor_id: uuid.UUID
    target_id: uuid.UUID


class CanViewProfiles(Query[dict[uuid.UUID, Decision]], frozen=True):
    """May `actor_id` see each of `target_ids`' profiles? One answer per id (an unknown id is
    denied), computed in a fixed number of round trips whatever the number of ids."""

    actor_id: uuid.UUID
    target_ids: list[uuid.UUID]


Audience = Literal["everyone", "friends", "nobody"]


class PrivacySettingsView(msgspec.Struct, frozen=True):
    """A user's privacy settings (defaults for users who never changed them)."""

    who_can_message: Audience = "everyone"
    who_can_call: Audience = "everyone"
    profile_visibility: Audience = "everyone"
    show_last_seen: bool = True
    read_receipts: bool = True


class GetPrivacySettings(Query[PrivacySettingsView], frozen=True):
    """The privacy settings of `user_id` (messaging asks for read receipts, presence for last seen)."""

    user_id: uuid.UUID


class HidingLastSeen(Query[set[uuid.UUID]], frozen=True):
    """Those of `user_ids` whose `show_last_seen` is off, in one question (presence's batched
    announcements)."""

    user_ids: list[uuid.UUID]
