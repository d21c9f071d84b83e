"""privacy — privacy settings and the permission answers built on them.

Tables (schema `privacy`): settings (one row per user who changed a default; none otherwise).
Publishes: `privacy.settings_changed.v1` (PrivacySettingsChanged), only when a value changed.
Listens: `blocks.user_blocked.v1`, `blocks.user_unblocked.v1`, `friendship.accepted.v1`,
`friendship.deleted.v1` (drop the pair's cached answers, both ways), `privacy.settings_changed.v1`
(drop every cached answer about that user as target), `users.user_deleted.v1` (drop the answers
about the user; remove their settings row, inbox), `friendship.user_friendships_removed.v1` (drop
the answers of each former pair, one pipeline). The cache drops are `inline` listeners (one Redis
write, run in the publishing request right after its commit), so the caller's next permission
read already reflects a block, a friendship or a settings change.
Answers: CanMessage, CanCall, CanViewProfile (Decision), CanViewProfiles (many targets in a fixed
number of round trips, from the source of truth), GetPrivacySettings, HidingLastSeen (presence).
Asks: GetProfiles (users), GetBlockState / GetBlockStates (blocks), AreFriends / FriendsAmong
(friendship), through the query bus; it never imports another module.
Routes: GET/PATCH /privacy/settings, GET /privacy/permissions/{user_id}.

Permission cache (Redis): `perm:{action}:{actor}:{target}` (action: message, call, profile),
TTL 10 minutes. A hit is one MGET and touches neither PostgreSQL nor another module.
Invalidation is by version rather than by index set: each answer records the version tokens
`perm:v:{target}` (settings of the target) and `perm:pv:{lo}:{hi}` (blocks and friendship of
the pair) it was computed under, and is served only while both still hold those tokens. So a
settings change drops every answer about a user in O(1), without KEYS/SCAN or a set to
maintain, and the race "computed allowed from PostgreSQL → block commits and invalidates →
stale allowed written" cannot serve the stale answer: the versions are read before computing,
so that answer is stored under the superseded token (see cache.py).
When Redis fails, answers are computed from PostgreSQL (and the other modules' queries); when
an answer cannot be determined at all, it is "denied". An invalidation that fails because Redis
is down raises, and the outbox relay delivers it again once Redis is back.
"""

from __future__ import annotations

import uuid

from litestar import Router
from litestar.di import Provide

from src.common.queries.privacy import (
    CanCall,
    CanMessage,
    CanViewProfile,
    CanViewProfiles,
    Decision,
    GetPrivacySettings,
    HidingLastSeen,
    PrivacySettingsView,
)
from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.modules.privacy.controller import PrivacyController
from src.modules.privacy.listeners import register_listeners
from src.modules.privacy.service import PrivacyService


def build(ctx: AppContext) -> ModuleParts:
    """Wire the privacy service, its query handlers, listeners and routes."""
    service = PrivacyService(ctx)

    async def can_message(query: CanMessage) -> Decision:
        return await service.answer("message", query.actor_id, query.target_id)

    async def can_call(query: CanCall) -> Decision:
        return await service.answer("call", query.actor_id, query.target_id)

    async def can_view_profile(query: CanViewProfile) -> Decision:
        return await service.answer("profile", query.actor_id, query.target_id)

    async def can_view_profiles(query: CanViewProfiles) -> dict[uuid.UUID, Decision]:
        return await service.can_view_profiles(query.actor_id, query.target_ids)

    async def get_settings(query: GetPrivacySettings) -> PrivacySettingsView:
        return await service.settings_of(query.user_id)

    ctx.queries.register(CanMessage, can_message)
    ctx.queries.register(CanCall, can_call)
    ctx.queries.register(CanViewProfile, can_view_profile)
    ctx.queries.register(CanViewProfiles, can_view_profiles)
    ctx.queries.register(GetPrivacySettings, get_settings)

    async def hiding_last_seen(query: HidingLastSeen) -> set[uuid.UUID]:
        return await service.hiding_last_seen(query.user_ids)

    ctx.queries.register(HidingLastSeen, hiding_last_seen)
    register_listeners(ctx, service)
    router = Router(path="/", route_handlers=[PrivacyController],
                    dependencies={"privacy_service": Provide(lambda: service, sync_to_thread=False)})
    return ModuleParts(route_handlers=[router])


module = Module(name="privacy", build=build)
