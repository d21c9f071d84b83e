"""follows — who follows whom (a directed edge, one per pair and direction).

Tables (schema `follows`): follows.
Publishes: `follows.follow_created.v1` (FollowCreated, once per new edge),
`follows.follow_deleted.v1` (FollowDeleted, once per removed edge: unfollow, block),
`follows.user_follows_removed.v1` (UserFollowsRemoved: every edge of a deleted account, at once).
Listens: `blocks.user_blocked.v1` (removes the follows both ways, inbox), `users.user_deleted.v1`
(removes the user's follows both ways in one statement, inbox, in a worker), `follows.follow_created.v1`
(`follow:new` to the followee).
Asks: GetBlockState (blocks: may the actor follow), GetBlockStates (blocks: a list leaves out pairs
blocked since, until the cascade removed their edges), CanViewProfile (privacy: who may see a
user's lists), GetProfiles (users).
Answers: FollowSuggestions, FollowingIds, FollowsAmong, FollowerCount, FollowerIdsAfter.
"""

from __future__ import annotations

import uuid

from litestar import Router
from litestar.di import Provide

from src.common.queries.graph import (
    FollowerCount,
    FollowerIdsAfter,
    FollowingIds,
    FollowsAmong,
    FollowSuggestions,
)
from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.modules.follows.controller import FollowsController
from src.modules.follows.listeners import register_listeners
from src.modules.follows.service import FollowsService


def build(ctx: AppContext) -> ModuleParts:
    """Wire the follows service, its listeners and routes."""
    service = FollowsService(ctx)
    register_listeners(ctx, service)

    async def suggestions(query: FollowSuggestions) -> list[uuid.UUID]:
        return await service.suggestions(query.user_id, query.limit)

    async def following_ids(query: FollowingIds) -> set[uuid.UUID]:
        return await service.following_ids(query.user_id, query.limit)

    ctx.queries.register(FollowSuggestions, suggestions)
    async def follows_among(query: FollowsAmong) -> set[uuid.UUID]:
        return await service.follows_among(query.follower_id, query.followee_ids)

    async def follower_count(query: FollowerCount) -> int:
        return await service.follower_count(query.user_id, query.cap)

    async def follower_ids_after(query: FollowerIdsAfter) -> list[uuid.UUID]:
        return await service.follower_ids_after(query.user_id, query.after, query.limit)

    ctx.queries.register(FollowingIds, following_ids)
    ctx.queries.register(FollowsAmong, follows_among)
    ctx.queries.register(FollowerCount, follower_count)
    ctx.queries.register(FollowerIdsAfter, follower_ids_after)
    router = Router(path="/", route_handlers=[FollowsController],
                    dependencies={"follows_service": Provide(lambda: service, sync_to_thread=False)})
    return ModuleParts(route_handlers=[router])


module = Module(name="follows", build=build)
