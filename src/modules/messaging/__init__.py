"""messaging — direct and (minimal) group conversations, messages, receipts, typing, sync, search.

Tables (schema `messaging`): conversations (direct ones unique by `direct_key` "minid:maxid";
`last_seq` allocates gapless per-conversation seqs), members (read / delivered positions),
messages (tombstones keep their seq; generated `tsvector` for search), reactions,
hidden_messages (deleted "for me"), sync_heads + changes (the per-user change log behind `/sync`).
Redis: `sync:{user_id}` capped streams (a cache of the change log, see changes.py),
`typing:{conversation_id}:{user_id}` (seconds).
Publishes: `messaging.message_created.v1` (MessageCreated, once per stored message) while some
module listens to it: with no listener, the outbox write and its dispatch (about the cost of the
send itself) are skipped and the send is one autocommitted statement (see sending.py).
Listens: `users.user_deleted.v1` (accounts.py: messages kept and flagged `sender_deleted`,
memberships removed, direct conversations made read-only; inbox-guarded). `blocks.user_blocked.v1`
needs no listener: privacy's CanMessage already refuses new messages between the pair, history
stays, and messaging caches no membership or permission.
Also: `messaging.mutes` (mutes.py: `PATCH /conversations/{id} {muted_until}`); publishes
`messaging.conversation_read.v1` (ConversationRead) when a read position moves forward (while some
module listens); answers GetReadPositions, GetConversationMutes, GetMessageBodies (notifications).
Asks: CanMessage, GetPrivacySettings (privacy), GetProfiles (users), GetBlockState (blocks).
Socket events in: message:send, message:read, message:delivered, typing:start, typing:stop.
Socket events out (to members' user rooms only): message:new, message:updated, message:deleted,
message:reaction, message:read, message:delivered, conversation:updated, typing.
Tasks: `messaging.prune_changes` (queue `maintenance`): drops change-log rows past the 45-day
retention, enqueued hourly by the workers' periodic scheduler.

Not yet: group management (rename, members, roles, join requests: a later issue; groups here
are created with their members and read), media (the media module does not exist: `media_ids`
are stored as given, unchecked), search of users / posts / groups (400 `unsupported_type`).
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from src.common.events.users import UserDeleted
from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.modules.messaging.accounts import LISTENER, AccountCleanup
from src.modules.messaging.actors import TASKS
from src.modules.messaging.changes import Fanout, SyncStream
from src.modules.messaging.controller import ConversationsController, GroupsController, SyncController
from src.modules.messaging.conversations import ConversationService
from src.modules.messaging.gateway import socket_handlers
from src.modules.messaging.messages import MessageService
from src.modules.messaging.mutes import MuteController, MuteService
from src.modules.messaging.receipts import ReceiptService
from src.modules.messaging.search import SearchService
from src.modules.messaging.sending import SendService
from src.modules.messaging.sync import SyncService
from src.modules.messaging.text import TextSafeRequest
from src.modules.messaging.typing import TypingService


def build(ctx: AppContext) -> ModuleParts:
    """Wire the messaging services, the UserDeleted listener, routes and socket handlers."""
    stream = SyncStream(ctx.redis)
    mutes = MuteService(ctx)
    mutes.register()
    fanout = Fanout(stream, ctx.realtime)
    services = {
        "conversation_service": ConversationService(ctx, fanout),
        "message_service": MessageService(ctx, fanout),
        "send_service": SendService(ctx, fanout),
        "receipt_service": ReceiptService(ctx, fanout),
        "sync_service": SyncService(ctx, stream),
        "search_service": SearchService(ctx),
        "mute_service": mutes,
    }
    typing = TypingService(ctx)
    # Idempotent through its own inbox claim (AccountCleanup.forget_user), which `subscribe` would
    # also do; it runs its own unit of work so that it can emit after the commit.
    ctx.bus.subscribe_idempotent(UserDeleted, LISTENER, AccountCleanup(ctx, fanout).forget_user)
    router = Router(
        path="/", route_handlers=[ConversationsController, GroupsController, SyncController, MuteController],
        request_class=TextSafeRequest,
        dependencies={name: Provide(_constant(service), sync_to_thread=False) for name, service in services.items()},
    )
    handlers = socket_handlers(services["send_service"], services["receipt_service"], typing)  # type: ignore[arg-type]
    return ModuleParts(route_handlers=[router], socket_handlers=handlers)


def _constant(value: object):  # type: ignore[no-untyped-def]
    return lambda: value


module = Module(name="messaging", build=build, tasks=TASKS)
