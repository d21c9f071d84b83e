"""Events about group conversations (published by messaging)."""

from __future__ import annotations

import uuid
from typing import Literal

from src.common.events.base import Event


class GroupMemberAdded(Event, frozen=True, kw_only=True):
    """`user_ids` joined group `group_id`: added by `actor_id` (an admin), or their join request
    was accepted by `actor_id`. Fires once per change, after the members can read the group."""

    name = "messaging.group_member_added.v1"
    group_id: uuid.UUID
    user_ids: list[uuid.UUID]
    actor_id: uuid.UUID
    via: Literal["added", "join_request"] = "added"


class GroupMemberRemoved(Event, frozen=True, kw_only=True):
    """`user_id` is no longer a member of `group_id`: removed by `actor_id`, left (actor is the user),
    or their account was deleted. `new_owner_id` is set when the ownership passed on."""

    name = "messaging.group_member_removed.v1"
    group_id: uuid.UUID
    user_id: uuid.UUID
    actor_id: uuid.UUID
    reason: Literal["removed", "left", "account_deleted"]
    new_owner_id: uuid.UUID | None = None


class GroupDeleted(Event, frozen=True, kw_only=True):
    """Group `group_id` no longer exists (its owner deleted it, or its last member left);
    `member_ids` were its members at that moment. Its history is gone."""

    name = "messaging.group_deleted.v1"
    group_id: uuid.UUID
    actor_id: uuid.UUID
    member_ids: list[uuid.UUID]
