"""Who sees whose presence: contacts (friends, people sharing a conversation), never across a
block, and only for users whose `show_last_seen` is on. The relation is symmetric except for
that setting, so the same rule answers `GET /presence` and picks a transition's recipients, except
that pushed transitions only follow groups of at most `PRESENCE_PUSH_GROUP_MAX` members: in a group
of 1,000 everyone is everyone's contact, and 1,000 members coming online would be a million emits
(measured: bench/groups.py stalled the API for 40 s). Members of bigger groups ask (`GET /presence`)."""

from __future__ import annotations

import asyncio
import uuid

from src.common.queries.graph import BlockedEitherWay, BlockedEitherWayOfMany, FriendIds, FriendIdsOfMany
from src.common.queries.messaging import ConversationPeerIds, ConversationPeerIdsOfMany
from src.common.queries.privacy import HidingLastSeen
from src.infra.context import AppContext


async def contacts(ctx: AppContext, user_id: uuid.UUID, *, among: list[uuid.UUID] | None = None,
                   limit: int = 5000, max_group_members: int | None = None) -> set[uuid.UUID]:
    """Friends and conversation peers of `user_id` (within `among`; through groups of at most
    `max_group_members` when given), minus blocks either way."""
    friends, peers, blocked = await asyncio.gather(
        ctx.queries.ask(FriendIds(user_id=user_id, among=among, limit=limit)),
        ctx.queries.ask(ConversationPeerIds(user_id=user_id, among=among, limit=limit,
                                            max_group_members=max_group_members)),
        ctx.queries.ask(BlockedEitherWay(user_id=user_id)))
    return (set(friends) | set(peers)) - set(blocked) - {user_id}


async def contacts_of_many(ctx: AppContext, user_ids: list[uuid.UUID], *, limit: int = 5000,
                           max_group_members: int | None = None) -> dict[uuid.UUID, set[uuid.UUID]]:
    """`contacts` of each of `user_ids`: three questions for all of them."""
    friends, peers, blocked = await asyncio.gather(
        ctx.queries.ask(FriendIdsOfMany(user_ids=user_ids, limit=limit)),
        ctx.queries.ask(ConversationPeerIdsOfMany(user_ids=user_ids, limit=limit, max_group_members=max_group_members)),
        ctx.queries.ask(BlockedEitherWayOfMany(user_ids=user_ids)))
    return {u: (friends[u] | peers[u]) - blocked[u] - {u} for u in user_ids}


async def shows_last_seen(ctx: AppContext, user_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """Those of `user_ids` whose `show_last_seen` setting is on (one question for them all)."""
    if not user_ids:
        return set()
    hidden = await ctx.queries.ask(HidingLastSeen(user_ids=sorted(user_ids)))
    return user_ids - hidden


async def visible_to(ctx: AppContext, viewer: uuid.UUID, targets: list[uuid.UUID]) -> set[uuid.UUID]:
    """Those of `targets` whose presence `viewer` may see (themselves included)."""
    candidates = await contacts(ctx, viewer, among=[t for t in targets if t != viewer])
    return await shows_last_seen(ctx, candidates) | ({viewer} & set(targets))
