"""friendship — friend requests and friendships (mutual, at most one per pair of users).

Tables (schema `friendship`): friend_requests (pending only), friendships.
Publishes: `friendship.request_sent.v1` (FriendRequestSent), `friendship.accepted.v1`
(FriendshipAccepted), `friendship.deleted.v1` (FriendshipDeleted: unfriend, block),
`friendship.user_friendships_removed.v1` (UserFriendshipsRemoved: every friendship of a deleted
account, in one event).
Listens: `blocks.user_blocked.v1` (removes the friendship and pending requests both ways, inbox),
`users.user_deleted.v1` (removes the user's friendships and requests, inbox, in a worker),
`friendship.request_sent.v1` (`friend:request` to the recipient),
`friendship.accepted.v1` (`friend:accepted` to both users).
Asks: GetBlockState (blocks), GetBlockStates (blocks: lists leave out pairs blocked since, until
the cascade removed them), GetProfiles (users).
Answers: AreFriends, FriendsAmong (many ids in one query, for privacy's CanViewProfiles),
FriendIds, FriendIdsOfMany (presence: contacts).
"""

from __future__ import annotations

import uuid

from litestar import Router
from litestar.di import Provide

from src.common.queries.graph import AreFriends, FriendIds, FriendIdsOfMany, FriendsAmong
from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.modules.friendship.controller import FriendshipController
from src.modules.friendship.listeners import register_listeners
from src.modules.friendship.service import FriendshipService


def build(ctx: AppContext) -> ModuleParts:
    """Wire the friendship service, its query handler, listeners and routes."""
    service = FriendshipService(ctx)

    async def are_friends(query: AreFriends) -> bool:
        return await service.are_friends(query.user_a, query.user_b)

    async def friends_among(query: FriendsAmong) -> set[uuid.UUID]:
        return await service.friends_among(query.user_id, query.other_ids)

    ctx.queries.register(AreFriends, are_friends)
    ctx.queries.register(FriendsAmong, friends_among)

    async def friend_ids(query: FriendIds) -> set[uuid.UUID]:
        return await service.friend_ids(query.user_id, query.among, query.limit)

    ctx.queries.register(FriendIds, friend_ids)

    async def friend_ids_of_many(query: FriendIdsOfMany) -> dict[uuid.UUID, set[uuid.UUID]]:
        return await service.friend_ids_of_many(query.user_ids, query.limit)

    ctx.queries.register(FriendIdsOfMany, friend_ids_of_many)
    register_listeners(ctx, service)
    router = Router(path="/", route_handlers=[FriendshipController],
                    dependencies={"friendship_service": Provide(lambda: service, sync_to_thread=False)})
    return ModuleParts(route_handlers=[router])


module = Module(name="friendship", build=build)
