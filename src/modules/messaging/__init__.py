"""messaging — direct and group conversations, messages, receipts, typing, sync, search.

Tables (schema `messaging`): conversations (direct ones unique by `direct_key` "minid:maxid";
`last_seq` allocates gapless per-conversation seqs; groups: name, description, `join_policy`,
`owner_id`), members (role owner|admin|member, `joined_seq`, read / delivered positions),
messages (tombstones keep their seq; generated `tsvector` for search; `xid` of the writing
transaction for the group stream), reactions, hidden_messages (deleted "for me"), join_requests
(pending only), sync_heads + changes (the per-user change log behind `/sync`).
Redis: `sync:{user_id}` capped streams (a cache of the change log, see changes.py),
`typing:{conversation_id}:{user_id}` (seconds).
Publishes: `messaging.message_created.v1` (MessageCreated, once per stored message, always: its
outbox row is the last step of the send's one statement, see sending.py);
`messaging.group_member_added.v1`, `messaging.group_member_removed.v1`, `messaging.group_deleted.v1`
(common/events/groups.py, once per change).
Listens: `users.user_deleted.v1` (in a worker; accounts.py: messages kept and flagged `sender_deleted`,
direct conversations made read-only, each group left as if the user left it: ownership passed
on, an emptied group deleted; subscribed with the bus's inbox, its socket emits and stream copies
through `tx.on_commit`). `blocks.user_blocked.v1` needs no listener:
privacy's CanMessage already refuses new direct messages between the pair and history stays;
a blocked pair both in a group stay in it (the group is everyone's, and removing either would
let a block evict people from groups they share with others); they cannot add each other, and
join requests never bring a blocked pair together (join_requests.py).
Asks: CanMessage, GetPrivacySettings (privacy), GetProfiles (users), GetBlockState,
BlockedEitherWay (blocks).
Answers: IsConversationMember, ConversationMemberIds, ConversationPeerIds, ConversationPeerIdsOfMany (queries.py),
SearchGroups (the caller's groups and groups open to join requests, by name).
Asks also: SearchPosts (posts), SearchUsers (users) for `/search`.
Mutes (mutes.py: `PATCH /conversations/{id} {muted_until}`, table `messaging.mutes`);
publishes `messaging.conversation_read.v1` (ConversationRead) when a read position moves forward;
answers GetReadPositions, GetConversationMutes, GetReadStates, GetMessageBodies, GetMembersToNotify
(group_notify.py) for notifications.
Socket events in: message:send, message:read, message:delivered, typing:start, typing:stop.
Socket events out (to members' user rooms only): message:new, message:updated, message:deleted,
message:reaction, message:read, message:delivered, conversation:updated, typing, group:updated,
group:member_added, group:member_removed (the removed user included).
Groups (groups.py, group_members.py, join_requests.py, group_routes.py): roles, PATCH / DELETE,
members (add, remove, leave, roles, ownership transfer under the conversation row lock), join
requests, at most `GROUP_MAX_MEMBERS`; a member reads from the seq they joined at. A group
message writes no row per member: `/sync` reads group messages from group_stream.py.
Tasks: `messaging.prune_changes` (queue `maintenance`): drops change-log rows past the 45-day
retention, enqueued hourly by the workers' periodic scheduler.

Media: `media_ids` must be the sender's media of purpose `message` (GetAttachableMedia, 400
`invalid_media`); views describe them (GetMediaViews); `media.media_processed.v1` becomes
`message:updated` (media.py, inbox-guarded); deleting for everyone publishes
`messaging.message_deleted.v1` (MessageDeleted, with the media ids: media removes them).
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from src.common.events.media import MediaProcessed
from src.common.events.users import UserDeleted
from src.common.queries.search import SearchGroups
from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.modules.messaging.accounts import LISTENER, AccountCleanup
from src.modules.messaging.actors import TASKS
from src.modules.messaging.changes import Fanout, SyncStream
from src.modules.messaging.controller import ConversationsController, GroupsController, SyncController
from src.modules.messaging.conversations import ConversationService
from src.modules.messaging.gateway import socket_handlers
from src.modules.messaging.group_members import MemberService
from src.modules.messaging.group_notify import register_members_to_notify
from src.modules.messaging.group_routes import GroupAdminController
from src.modules.messaging.groups import GroupService
from src.modules.messaging.join_requests import JoinRequestService
from src.modules.messaging.media import LISTENER as MEDIA_LISTENER
from src.modules.messaging.media import MediaUpdates
from src.modules.messaging.messages import MessageService
from src.modules.messaging.mutes import MuteController, MuteService
from src.modules.messaging.queries import register_queries
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
    register_members_to_notify(ctx)
    fanout = Fanout(stream, ctx.realtime)
    services = {
        "conversation_service": ConversationService(ctx, fanout),
        "message_service": MessageService(ctx, fanout),
        "send_service": SendService(ctx, fanout),
        "receipt_service": ReceiptService(ctx, fanout),
        "sync_service": SyncService(ctx, stream),
        "search_service": SearchService(ctx),
        "group_service": GroupService(ctx, fanout),
        "member_service": MemberService(ctx, fanout),
        "join_request_service": JoinRequestService(ctx, fanout),
        "mute_service": mutes,
    }
    register_queries(ctx)
    ctx.queries.register(SearchGroups, services["search_service"].groups)  # type: ignore[attr-defined]
    typing = TypingService(ctx)
    ctx.bus.subscribe(UserDeleted, LISTENER, AccountCleanup(fanout).forget_user,
                      worker=True)  # emits through tx.on_commit
    ctx.bus.subscribe_idempotent(MediaProcessed, MEDIA_LISTENER, MediaUpdates(ctx, fanout).on_media_processed)
    router = Router(
        path="/", route_handlers=[ConversationsController, GroupsController, GroupAdminController, SyncController,
                                  MuteController],
        request_class=TextSafeRequest,
        dependencies={name: Provide(_constant(service), sync_to_thread=False) for name, service in services.items()},
    )
    handlers = socket_handlers(services["send_service"], services["receipt_service"], typing)  # type: ignore[arg-type]
    return ModuleParts(route_handlers=[router], socket_handlers=handlers)


def _constant(value: object):  # type: ignore[no-untyped-def]
    return lambda: value


module = Module(name="messaging", build=build, tasks=TASKS)
