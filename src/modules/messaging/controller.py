"""REST routes of the messaging module: conversations, messages, groups, `/sync`, `/search`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Response, delete, get, patch, post, put
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from src.common.auth import Principal
from src.common.pagination import BIGINT_MAX, Page
from src.modules.messaging.conversations import ConversationService
from src.modules.messaging.messages import MessageService
from src.modules.messaging.receipts import ReceiptService
from src.modules.messaging.schemas import (
    ConversationView,
    CreateGroup,
    EditMessage,
    MessagePage,
    MessageView,
    OpenDirect,
    ReactionsView,
    ReceiptView,
    SendMessage,
    SyncPage,
    UpTo,
)
from src.modules.messaging.search import SearchService
from src.modules.messaging.sending import SendService
from src.modules.messaging.sync import SyncService

Limit = Annotated[int | None, Parameter(ge=1, le=1000, description="page size (at most 100 are returned)")]
Cursor = Annotated[str | None, Parameter(max_length=512)]
SeqParam = Annotated[int | None, Parameter(ge=0, le=BIGINT_MAX)]
# `scope` is a reserved handler argument in Litestar (the ASGI scope): read the query under another name.
DeleteScope = Annotated[Literal["me", "everyone"], Parameter(query="scope")]


def _created(view: MessageView | ConversationView, created: bool) -> Response[MessageView | ConversationView]:
    return Response(view, status_code=HTTP_201_CREATED if created else HTTP_200_OK)


class ConversationsController(Controller):
    path = "/conversations"
    tags = ["messaging"]

    @post("/", responses={HTTP_200_OK: ResponseSpec(ConversationView, description="It already existed")})
    async def open_direct(self, data: OpenDirect, principal: Principal,
                          conversation_service: ConversationService) -> Response[ConversationView]:
        """The direct conversation with a user: 201 when created, 200 when it already existed."""
        view, created = await conversation_service.open_direct(principal.user_id, data.user_id)
        return _created(view, created)  # type: ignore[return-value]

    @get("/")
    async def list_conversations(self, principal: Principal, conversation_service: ConversationService,
                                 limit: Limit = None, cursor: Cursor = None) -> Page[ConversationView]:
        """The caller's conversations by last activity, with last message and unread count."""
        items, next_cursor = await conversation_service.list_mine(principal.user_id, limit, cursor)
        return Page(items=items, next_cursor=next_cursor)

    @get("/{conversation_id:uuid}")
    async def get_conversation(self, conversation_id: uuid.UUID, principal: Principal,
                               conversation_service: ConversationService) -> ConversationView:
        """One of the caller's conversations (404 for non-members)."""
        return await conversation_service.get(principal.user_id, conversation_id)

    @get("/{conversation_id:uuid}/messages")
    async def list_messages(self, conversation_id: uuid.UUID, principal: Principal, message_service: MessageService,
                            before_seq: SeqParam = None, after_seq: SeqParam = None, limit: Limit = None,
                            cursor: Cursor = None) -> MessagePage:
        """Messages in seq order: the newest page, or before / after a seq."""
        return await message_service.history(principal.user_id, conversation_id, before_seq=before_seq,
                                      after_seq=after_seq, limit=limit, cursor=cursor)

    @post("/{conversation_id:uuid}/messages", responses={HTTP_200_OK: ResponseSpec(
        MessageView, description="A retry (same client_msg_id): the stored message")})
    async def send_message(self, conversation_id: uuid.UUID, data: SendMessage, principal: Principal,
                           send_service: SendService) -> Response[MessageView]:
        """Send a message: 201; the same client_msg_id again returns the stored message with 200."""
        view, created = await send_service.send(principal.user_id, conversation_id, data)
        return _created(view, created)  # type: ignore[return-value]

    @patch("/{conversation_id:uuid}/messages/{message_id:uuid}")
    async def edit_message(self, conversation_id: uuid.UUID, message_id: uuid.UUID, data: EditMessage,
                           principal: Principal, message_service: MessageService) -> MessageView:
        """Edit the body of one's own message."""
        return await message_service.edit(principal.user_id, conversation_id, message_id, data.body)

    @delete("/{conversation_id:uuid}/messages/{message_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_message(self, conversation_id: uuid.UUID, message_id: uuid.UUID, principal: Principal,
                             message_service: MessageService, delete_scope: DeleteScope = "me") -> None:
        """Delete for everyone (author only; a tombstone keeps its seq) or hide for oneself (`scope=me`)."""
        await message_service.delete(principal.user_id, conversation_id, message_id, delete_scope)

    @put("/{conversation_id:uuid}/messages/{message_id:uuid}/reactions/{emoji:str}")
    async def add_reaction(self, conversation_id: uuid.UUID, message_id: uuid.UUID, emoji: str,
                           principal: Principal, message_service: MessageService) -> ReactionsView:
        """React with an emoji (once per emoji per user)."""
        return await message_service.react(principal.user_id, conversation_id, message_id, emoji, add=True)

    @delete("/{conversation_id:uuid}/messages/{message_id:uuid}/reactions/{emoji:str}", status_code=HTTP_200_OK)
    async def remove_reaction(self, conversation_id: uuid.UUID, message_id: uuid.UUID, emoji: str,
                              principal: Principal, message_service: MessageService) -> ReactionsView:
        """Take one's reaction back."""
        return await message_service.react(principal.user_id, conversation_id, message_id, emoji, add=False)

    @post("/{conversation_id:uuid}/read", status_code=HTTP_200_OK)
    async def mark_read(self, conversation_id: uuid.UUID, data: UpTo, principal: Principal,
                        receipt_service: ReceiptService) -> ReceiptView:
        """Read receipt: the caller read up to `up_to_seq` (never backwards)."""
        return await receipt_service.mark_read(principal.user_id, conversation_id, data.up_to_seq)

    @post("/{conversation_id:uuid}/delivered", status_code=HTTP_200_OK)
    async def mark_delivered(self, conversation_id: uuid.UUID, data: UpTo, principal: Principal,
                             receipt_service: ReceiptService) -> ReceiptView:
        """Delivery receipt: a device of the caller received up to `up_to_seq`."""
        return await receipt_service.mark_delivered(principal.user_id, conversation_id, data.up_to_seq)


class GroupsController(Controller):
    path = "/groups"
    tags = ["messaging"]

    @post("/")
    async def create_group(self, data: CreateGroup, principal: Principal,
                           conversation_service: ConversationService) -> ConversationView:
        """Create a group conversation owned by the caller (members must exist, no blocks, ≤ 256)."""
        return await conversation_service.create_group(principal.user_id, data.name, data.description, data.member_ids,
                                                       join_policy=data.join_policy)

    @get("/{group_id:uuid}")
    async def get_group(self, group_id: uuid.UUID, principal: Principal,
                        conversation_service: ConversationService) -> ConversationView:
        """A group the caller belongs to."""
        return await conversation_service.get(principal.user_id, group_id, kind="group")


class SyncController(Controller):
    path = "/"
    tags = ["messaging"]

    @get("/sync")
    async def sync(self, principal: Principal, sync_service: SyncService, cursor: Cursor = None,
                   limit: Limit = None) -> SyncPage:
        """Everything the caller missed since the cursor, in order; no cursor: the current head."""
        return await sync_service.read(principal.user_id, cursor, limit)

    @get("/search")
    async def search(self, principal: Principal, search_service: SearchService,
                     q: Annotated[str | None, Parameter(max_length=200)] = None,
                     type: Annotated[str, Parameter(max_length=20)] = "messages",
                     limit: Limit = None, cursor: Cursor = None) -> Page[Any]:
        """Search what you may see: `type=messages` (default), `posts` (full text), `users` (name prefix),
        `groups` (your groups by name)."""
        return await search_service.search(principal.user_id, type, q, limit, cursor)
