"""What privacy does when events arrive (each listener idempotent).

The cache listeners raise when Redis is down, so the outbox relay delivers them again.
"""

from __future__ import annotations

from src.common.events.blocks import UserBlocked, UserUnblocked
from src.common.events.friendship import FriendshipAccepted, FriendshipDeleted, UserFriendshipsRemoved
from src.common.events.privacy import PrivacySettingsChanged
from src.common.events.users import UserDeleted
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.privacy.service import PrivacyService


def register_listeners(ctx: AppContext, service: PrivacyService) -> None:
    """Subscribe the privacy listeners to the bus."""
    cache = service.cache

    # Cache invalidations are idempotent by nature: a second delivery only writes another
    # fresh version token, which costs one recomputation and changes no answer.
    async def drop_pair_answers_on_blocked(event: UserBlocked) -> None:
        await cache.invalidate_pair(event.blocker_id, event.blocked_id)

    async def drop_pair_answers_on_unblocked(event: UserUnblocked) -> None:
        await cache.invalidate_pair(event.blocker_id, event.blocked_id)

    async def drop_pair_answers_on_friendship_accepted(event: FriendshipAccepted) -> None:
        await cache.invalidate_pair(event.requester_id, event.accepter_id)

    async def drop_pair_answers_on_friendship_deleted(event: FriendshipDeleted) -> None:
        await cache.invalidate_pair(event.user_a, event.user_b)

    async def drop_pair_answers_on_user_friendships_removed(event: UserFriendshipsRemoved) -> None:
        await cache.invalidate_pairs(event.user_id, event.friend_ids)

    async def drop_target_answers_on_settings_changed(event: PrivacySettingsChanged) -> None:
        await cache.invalidate_target(event.user_id)

    async def drop_target_answers_on_user_deleted(event: UserDeleted) -> None:
        await cache.invalidate_target(event.user_id)

    async def remove_settings_on_user_deleted(tx: UnitOfWork, event: UserDeleted) -> None:
        await service.forget_user(tx, event.user_id)

    bus = ctx.bus
    # `inline`: one Redis write each, run in the publishing request right after its commit, so
    # the caller's next permission read (GET /privacy/permissions/{id}) already reflects it.
    bus.subscribe_idempotent(UserBlocked, "privacy.drop_pair_answers_on_blocked", drop_pair_answers_on_blocked,
                             inline=True)
    bus.subscribe_idempotent(UserUnblocked, "privacy.drop_pair_answers_on_unblocked",
                             drop_pair_answers_on_unblocked, inline=True)
    bus.subscribe_idempotent(FriendshipAccepted, "privacy.drop_pair_answers_on_friendship_accepted",
                             drop_pair_answers_on_friendship_accepted, inline=True)
    bus.subscribe_idempotent(FriendshipDeleted, "privacy.drop_pair_answers_on_friendship_deleted",
                             drop_pair_answers_on_friendship_deleted, inline=True)
    bus.subscribe_idempotent(PrivacySettingsChanged, "privacy.drop_target_answers_on_settings_changed",
                             drop_target_answers_on_settings_changed, inline=True)
    bus.subscribe_idempotent(UserDeleted, "privacy.drop_target_answers_on_user_deleted",
                             drop_target_answers_on_user_deleted, inline=True)
    bus.subscribe_idempotent(UserFriendshipsRemoved, "privacy.drop_pair_answers_on_user_friendships_removed",
                             drop_pair_answers_on_user_friendships_removed)
    bus.subscribe(UserDeleted, "privacy.remove_settings_on_user_deleted", remove_settings_on_user_deleted)
