"""blocks — who blocked whom.

Tables (schema `blocks`): blocks (blocker_id, blocked_id, created_at); one row per direction.
Publishes: `blocks.user_blocked.v1` (UserBlocked), `blocks.user_unblocked.v1` (UserUnblocked),
only on real changes (blocking twice publishes once).
Listens: `users.user_deleted.v1` (removes the user's blocks both directions, inbox, in a worker),
`blocks.user_blocked.v1` / `blocks.user_unblocked.v1` (emit `block:changed` to the blocker's own
devices; the blocked user is never told).
Asks: GetProfiles (users).
Answers: GetBlockState (asked by privacy, follows, friendship, messaging), GetBlockStates (many
pairs in one query: the lists of follows and friendship, privacy's CanViewProfiles),
BlockedEitherWay (users' suggestions), BlockedEitherWayOfMany (presence), BlockedPairs (notifications:
many pairs in one statement).
A block commits one row and its outbox event (3 statements, 1 commit); the cascade (follows,
friendship, counters) runs after the commit, off the request's path, and the lists consult
GetBlockStates meanwhile, so the blocker's next reads already reflect it.
Routes: PUT/DELETE /users/{id}/block, GET /blocks.
"""

from __future__ import annotations

import uuid

from litestar import Router
from litestar.di import Provide

from src.common.queries.graph import (
    BlockedEitherWay,
    BlockedEitherWayOfMany,
    BlockedPairs,
    BlockState,
    GetBlockState,
    GetBlockStates,
)
from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.modules.blocks.controller import BlocksController
from src.modules.blocks.listeners import register_listeners
from src.modules.blocks.service import BlocksService


def build(ctx: AppContext) -> ModuleParts:
    """Wire the blocks service, its query handler, listeners and routes."""
    service = BlocksService(ctx)

    async def get_block_state(query: GetBlockState) -> BlockState:
        return await service.block_state(query.user_a, query.user_b)

    async def blocked_either_way(query: BlockedEitherWay) -> set[uuid.UUID]:
        return await service.blocked_either_way(query.user_id)

    async def get_block_states(query: GetBlockStates) -> dict[uuid.UUID, BlockState]:
        return await service.block_states(query.user_id, query.other_ids)

    async def blocked_pairs(query: BlockedPairs) -> set[tuple[uuid.UUID, uuid.UUID]]:
        return await service.blocked_pairs(query.pairs)

    ctx.queries.register(GetBlockState, get_block_state)
    ctx.queries.register(GetBlockStates, get_block_states)
    ctx.queries.register(BlockedEitherWay, blocked_either_way)
    ctx.queries.register(BlockedPairs, blocked_pairs)

    async def blocked_either_way_of_many(query: BlockedEitherWayOfMany) -> dict[uuid.UUID, set[uuid.UUID]]:
        return await service.blocked_either_way_of_many(query.user_ids)

    ctx.queries.register(BlockedEitherWayOfMany, blocked_either_way_of_many)
    register_listeners(ctx, service)
    router = Router(path="/", route_handlers=[BlocksController],
                    dependencies={"blocks_service": Provide(lambda: service, sync_to_thread=False)})
    return ModuleParts(route_handlers=[router])


module = Module(name="blocks", build=build)
