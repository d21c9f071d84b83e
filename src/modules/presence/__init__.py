"""presence — who is online, debounced transitions to contacts, last seen.

Tables (schema `presence`): last_seen (when a user last went offline).
Redis (see state.py): `presence:sockets:{user}` (live sockets with heartbeat expiries),
`presence:online:{user}` (announced online), `presence:due` (checks the sweep owes),
`presence:sweeper` (lease of the sweep chain), `presence:kick`; all with TTLs.
Publishes: nothing. Listens: `users.user_deleted.v1` (drops the last-seen row and Redis state;
naturally idempotent).
Asks: FriendIds (friendship), ConversationPeerIds (messaging), BlockedEitherWay (blocks) for
`GET /presence`, and their batch forms FriendIdsOfMany, ConversationPeerIdsOfMany and
BlockedEitherWayOfMany to announce a batch of transitions in a fixed number of questions;
HidingLastSeen (privacy: who has `show_last_seen` off) for both.
Routes: GET /presence?user_ids=a,b (≤ 100; null for whoever the caller may not see).
Socket: lifecycle hooks (connect, disconnect), `presence:heartbeat` in; `presence
{user_id, online, last_seen_at}` out, to online contacts, on transitions only.
Tasks (queue `presence`): `presence.announce` (an online transition's fan-out), `presence.sweep`
(offline transitions: heartbeat expiry and the debounce after the last disconnect).

Who sees it: friends and people sharing a conversation, never across a block, only while the
user's `show_last_seen` is on (visibility.py).
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from src.common.events.users import UserDeleted
from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.modules.presence.actors import TASKS, service
from src.modules.presence.controller import PresenceController


def build(ctx: AppContext) -> ModuleParts:
    """Wire the presence service: socket hooks, heartbeat, route, the account-deletion listener."""
    presence = service(ctx)

    async def forget_user(event: UserDeleted) -> None:
        await presence.forget(event.user_id)

    ctx.bus.subscribe_idempotent(UserDeleted, "presence.forget_user_on_user_deleted", forget_user)
    router = Router(path="/", route_handlers=[PresenceController],
                    dependencies={"presence_service": Provide(lambda: presence, sync_to_thread=False)})
    return ModuleParts(route_handlers=[router], socket_handlers={"presence:heartbeat": presence.heartbeat},
                       on_socket_connect=[presence.connected], on_socket_disconnect=[presence.disconnected],
                       on_shutdown=[presence.changes.flush])


module = Module(name="presence", build=build, tasks=TASKS)
