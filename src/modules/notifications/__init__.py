"""notifications — in-app, push and email notifications, with preferences; devices.

Tables (schema `notifications`): notifications (one id across channels; bursts on one subject
collapse into one unread row, updated in place), sources ((user, event id) already notified; a
group message: (conversation, event id), once for all its members),
preferences (overrides of the defaults, `show_previews`), devices (push tokens, unique).
Redis: `notifications:sockets:{user_id}` (socket ids, fed by the socket hooks),
`notifications:digest:{user_id}` (an open email window), `notifications:pending:{user_id}:{conversation_id}`
(messages waiting for their due check: one window per recipient and conversation),
`notifications:due` (the windows by due time, polled by workers); a message with several
recipients (a group's): `notifications:conversation:{conversation_id}` (one window per
conversation) and `notifications:due:conversations` (conversation_windows.py).
Listens: `follows.follow_created.v1` (follow), `friendship.request_sent.v1` (friend_request),
`friendship.accepted.v1` (friend_accepted), `posts.post_reaction_set.v1` (reaction, collapsed per
post), `posts.comment_created.v1` (comment, collapsed per post), `calls.call_ended.v1` (call: each
callee of a missed call), `messaging.group_member_added.v1` (group: each added user),
`messaging.message_created.v1` (message, checked PUSH_DELAY later; the listener only touches Redis),
`messaging.conversation_read.v1` (clears that conversation's notifications),
`users.user_deleted.v1` (deletes the user's notifications, preferences, devices; in a worker),
`posts.post_deleted.v1` (deletes the reaction / comment notifications about the post).
A new kind is one listener building an `Intent` (listeners.py).
Asks: GetBlockStates (blocks), GetProfiles, GetEmailAddresses (users),
GetReadStates, GetMessageBodies, GetMembersToNotify (messaging).
Socket events out: `notification:new` (the view), `notification:cleared {ids}`.
Tasks: `notifications.push` (many alerts), `.clear`, `.retry_push`, `.message_due` (windows queued
by an older release) (queue `push`; a worker takes its concurrent push and due jobs together:
coalesce.py); worker loop `notifications.due_messages` (due windows, in batches: messages.py),
`notifications.email_digests` (queue `email`: the windows opened together, one job;
`.email_digest`: one user's, a failed one retried alone), `notifications.prune` (queue
`maintenance`, hourly: read notifications after 90 days, (user, event) records after 30).
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.modules.notifications.controller import DevicesController, NotificationsController
from src.modules.notifications.jobs import DUE_MESSAGES, TASKS, bind
from src.modules.notifications.listeners import register_listeners
from src.modules.notifications.services import Services


def build(ctx: AppContext) -> ModuleParts:
    """Wire the services, listeners, tasks' services, routes and socket hooks."""
    services = Services(ctx)
    bind(ctx, services)
    register_listeners(services)
    router = Router(path="/", route_handlers=[NotificationsController, DevicesController],
                    dependencies={"notifications": Provide(lambda: services, sync_to_thread=False)})
    return ModuleParts(route_handlers=[router], on_socket_connect=[services.presence.on_connect],
                       on_socket_disconnect=[services.presence.on_disconnect],
                       on_shutdown=[services.presence.flush])


module = Module(name="notifications", build=build, tasks=TASKS, loops=[DUE_MESSAGES])
