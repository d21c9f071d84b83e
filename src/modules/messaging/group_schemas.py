"""Request and response bodies of group management, and the payloads of its socket events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

Role = Literal["owner", "admin", "member"]
JoinPolicy = Literal["invite_only", "request"]
GroupName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
GroupDescription = Annotated[str, msgspec.Meta(max_length=1000)]
MAX_ADDED_AT_ONCE = 100

# -- requests -------------------------------------------------------------------------------


class UpdateGroup(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Fields to change (absent: unchanged; `description: null` clears it)."""

    name: GroupName | msgspec.UnsetType = msgspec.UNSET
    description: GroupDescription | msgspec.UnsetType | None = msgspec.UNSET
    join_policy: JoinPolicy | msgspec.UnsetType = msgspec.UNSET


class AddMembers(msgspec.Struct, forbid_unknown_fields=True):
    user_ids: Annotated[list[uuid.UUID], msgspec.Meta(min_length=1, max_length=MAX_ADDED_AT_ONCE)]


class ChangeRole(msgspec.Struct, forbid_unknown_fields=True):
    """`owner` transfers the ownership (the caller becomes an admin)."""

    role: Role


# -- responses ------------------------------------------------------------------------------


class GroupMemberView(msgspec.Struct):
    user_id: uuid.UUID
    role: Role
    joined_at: datetime


class AddedMembers(msgspec.Struct):
    """Who was added by the call (already-members are skipped)."""

    group_id: uuid.UUID
    added: list[GroupMemberView]


class JoinRequestView(msgspec.Struct):
    id: uuid.UUID
    group_id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime


# -- socket events (and /sync items) --------------------------------------------------------


class RoleChange(msgspec.Struct):
    user_id: uuid.UUID
    role: Role


class GroupUpdatedEvent(msgspec.Struct, kw_only=True):
    """`group:updated`: the group's settings now; `roles` lists role changes made by this change;
    `deleted: true` when the group is gone (its history too)."""

    group_id: uuid.UUID
    name: str | None
    description: str | None
    join_policy: str
    owner_id: uuid.UUID | None
    member_count: int
    actor_id: uuid.UUID
    roles: list[RoleChange] = []
    deleted: bool = False


class MemberAddedEvent(msgspec.Struct, kw_only=True):
    """`group:member_added`: `members` joined (to every member, the new ones included)."""

    group_id: uuid.UUID
    members: list[GroupMemberView]
    actor_id: uuid.UUID
    via: Literal["added", "join_request"]


class MemberRemovedEvent(msgspec.Struct, kw_only=True):
    """`group:member_removed`: `user_id` left or was removed (to the remaining members and to them)."""

    group_id: uuid.UUID
    user_id: uuid.UUID
    actor_id: uuid.UUID
    reason: Literal["removed", "left", "account_deleted"]
    new_owner_id: uuid.UUID | None = None
