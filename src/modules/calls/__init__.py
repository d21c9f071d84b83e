"""calls — 1:1 and group voice/video calls: live state, WebRTC signaling, TURN credentials, history.

Tables (schema `calls`): calls, participants (history of ended calls; live calls are in Redis).
Redis (store.py): `call:{id}` (live state, JSON), `call:user:{user_id}` (the user's live call: busy
check), `calls:unarchived` (ended calls not yet in history), `calls:node:{id}` (live API
processes). Transitions are compare-and-set (a read, then one Lua script that writes only if
nothing changed), so the first of two concurrent `call:accept` wins.
Publishes: `calls.call_ended.v1` (CallEnded, once per call, in the transaction writing history).
Listens: `blocks.user_blocked.v1` (the blocker hangs up a live call with the blocked user),
`users.user_deleted.v1` (hangs up their live call; deletes their history rows, inbox, in a worker).
Asks: CanCall (privacy), IsConversationMember and ConversationMemberIds (messaging).
Socket events in: call:invite, call:accept (also resumes after a dropped socket), call:reject,
call:cancel, call:end, call:signal (to the recipient's joined socket only).
Socket events out: call:incoming, call:accepted, call:rejected, call:ended, call:signal.
Socket lifecycle: a disconnect of the joined socket starts the reconnect grace; each API process
holding sockets keeps `calls:node:{id}` alive (nodes.py), so that a participant whose process was
killed (no disconnect hook ran) may resume from another process.
Tasks (queue `calls`): `calls.ring_timeout` and `calls.grace_expired`, delayed messages (durable
timers); `calls.archive_leftovers` (queue `maintenance`, every minute).
Routes: GET /calls/ice-servers, GET /calls, GET /calls/{id}.
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from src.common.auth import Principal
from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.modules.calls.actors import TASKS
from src.modules.calls.controller import CallsController
from src.modules.calls.gateway import socket_handlers
from src.modules.calls.listeners import register_listeners
from src.modules.calls.service import CallService


def build(ctx: AppContext) -> ModuleParts:
    """Wire the calls service, its listeners, routes, socket handlers and lifecycle hook."""
    service = CallService(ctx)
    register_listeners(ctx, service)

    async def on_connect(principal: Principal, sid: str) -> None:
        service.node.ensure_running()  # this process holds sockets: say it is alive

    async def on_disconnect(principal: Principal, sid: str) -> None:
        await service.socket_dropped(principal.user_id, sid)

    router = Router(path="/", route_handlers=[CallsController], dependencies={
        "call_service": Provide(lambda: service, sync_to_thread=False),
        "calls_ctx": Provide(lambda: ctx, sync_to_thread=False)})
    return ModuleParts(route_handlers=[router], socket_handlers=socket_handlers(ctx, service),
                       on_socket_connect=[on_connect], on_socket_disconnect=[on_disconnect])


module = Module(name="calls", build=build, tasks=TASKS)
