"""Request and response bodies of the messaging API, and the payloads of its socket events.

Socket payloads reuse the REST structs (`msgspec.convert`), so both paths validate alike.
A sync item's `data` is exactly the payload of the socket event named by its `type`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

MAX_BODY_CHARS = 4000
MAX_MEDIA = 10
MAX_GROUP_MEMBERS = 256  # the creator included

ClientMsgId = Annotated[str, msgspec.Meta(min_length=1, max_length=64,
                                          description="the sender's idempotency key for this message")]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**62)]


# -- requests -------------------------------------------------------------------------------

class OpenDirect(msgspec.Struct, forbid_unknown_fields=True):
    user_id: uuid.UUID


class CreateGroup(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    member_ids: Annotated[list[uuid.UUID], msgspec.Meta(min_length=1, max_length=MAX_GROUP_MEMBERS)]
    description: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    join_policy: Literal["invite_only", "request"] = "invite_only"


class SendMessage(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A new message: a body, media, or both. Body limits are checked with their own codes."""

    client_msg_id: ClientMsgId
    body: str | None = None
    media_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=MAX_MEDIA)] = msgspec.field(
        default_factory=list)
    reply_to: uuid.UUID | None = None


class EditMessage(msgspec.Struct, forbid_unknown_fields=True):
    body: str


class UpTo(msgspec.Struct, forbid_unknown_fields=True):
    up_to_seq: Seq


class SocketSendMessage(SendMessage, forbid_unknown_fields=True, kw_only=True):
    conversation_id: uuid.UUID


class SocketUpTo(UpTo, forbid_unknown_fields=True, kw_only=True):
    conversation_id: uuid.UUID


class SocketConversationRef(msgspec.Struct, forbid_unknown_fields=True):
    conversation_id: uuid.UUID


# -- responses and event payloads -------------------------------------------------------------

class MediaRef(msgspec.Struct, kw_only=True):
    """An attached media item as the media module describes it (fetch URLs with `GET /media/{id}`);
    only `id` is left once the media is gone."""

    id: uuid.UUID
    kind: str | None = None  # image | video | audio | file
    status: str | None = None  # processing | ready | failed
    content_type: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None


class MessageView(msgspec.Struct):
    """A message; a deleted one is a tombstone (`deleted: true`, body and media cleared, seq kept).

    `reactions` counts users per emoji; `my_reactions` are the caller's own (empty in payloads
    sent to several users). `sender_deleted` marks messages of a deleted account (body kept).
    """

    id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID
    client_msg_id: str
    body: str | None
    media: list[MediaRef]
    reply_to: uuid.UUID | None
    reactions: dict[str, int]
    my_reactions: list[str]
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    sender_deleted: bool = False


class MemberView(msgspec.Struct):
    """A member; `read_seq` is what they chose to reveal (frozen while read receipts are off)."""

    user_id: uuid.UUID
    role: str
    read_seq: int
    delivered_seq: int


class ConversationInfo(msgspec.Struct, kw_only=True):
    """A conversation as every member sees it (payload of `conversation:updated`)."""

    id: uuid.UUID
    kind: Literal["direct", "group"]
    name: str | None
    description: str | None
    owner_id: uuid.UUID | None
    members: list[MemberView]
    last_seq: int
    read_only: bool
    created_at: datetime
    activity_at: datetime
    join_policy: Literal["invite_only", "request"] | None = None  # groups only


class ConversationView(ConversationInfo, kw_only=True):
    """A conversation as the caller sees it: with their unread count and read position.

    `unread_count`: messages from others after `last_read_seq`, not deleted, not hidden by the
    caller. `peer_id`: the other user of a direct conversation (kept after they deleted their account).
    """

    peer_id: uuid.UUID | None
    last_message: MessageView | None
    unread_count: int
    last_read_seq: int
    last_delivered_seq: int


class MessagePage(msgspec.Struct):
    """Messages in `seq` order; `next_cursor` continues in the same direction."""

    items: list[MessageView]
    next_cursor: str | None
    has_more: bool


class ReceiptView(msgspec.Struct):
    """The caller's position in a conversation after a receipt."""

    conversation_id: uuid.UUID
    last_read_seq: int
    last_delivered_seq: int
    unread_count: int


class ReactionsView(msgspec.Struct):
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    reactions: dict[str, int]
    my_reactions: list[str]


class MessageDeletedEvent(msgspec.Struct):
    """`message:deleted`: scope `everyone` (a tombstone now) or `me` (hidden for this user)."""

    conversation_id: uuid.UUID
    message_id: uuid.UUID
    seq: int
    scope: Literal["me", "everyone"]


class ReactionEvent(msgspec.Struct):
    """`message:reaction`: one user's reaction added or removed, with the new counts."""

    conversation_id: uuid.UUID
    message_id: uuid.UUID
    seq: int
    user_id: uuid.UUID
    emoji: str
    action: Literal["added", "removed"]
    reactions: dict[str, int]


class ReceiptEvent(msgspec.Struct):
    """`message:read` / `message:delivered`: `user_id` has read / received up to `up_to_seq`."""

    conversation_id: uuid.UUID
    user_id: uuid.UUID
    up_to_seq: int


class TypingEvent(msgspec.Struct):
    conversation_id: uuid.UUID
    user_id: uuid.UUID
    typing: bool
    expires_in: int


class TypingAck(msgspec.Struct):
    conversation_id: uuid.UUID
    typing: bool
    expires_in: int


class SyncItem(msgspec.Struct):
    """One change: `type` is a socket event name, `data` that event's payload."""

    position: int
    type: str
    conversation_id: uuid.UUID | None
    data: dict[str, Any]


class SyncPage(msgspec.Struct):
    """Changes after the cursor, in order; continue from `next_cursor` (never null)."""

    items: list[SyncItem]
    next_cursor: str
    has_more: bool


class GroupHit(msgspec.Struct):
    """A group found by `GET /search?type=groups`."""

    id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime
