"""Privacy settings and permission answers: the only code that writes the privacy tables."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence

import msgspec
import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert

from src.common.auth import Principal
from src.common.errors import NotFound
from src.common.events.privacy import PrivacySettingsChanged
from src.common.queries.graph import AreFriends, FriendsAmong, GetBlockState, GetBlockStates
from src.common.queries.privacy import Decision, PrivacySettingsView
from src.common.queries.users import GetProfiles
from src.infra import metrics
from src.infra.context import AppContext
from src.infra.redis import REDIS_ERRORS
from src.infra.uow import UnitOfWork
from src.modules.privacy.cache import Lookup, PermissionCache
from src.modules.privacy.models import PrivacySettings
from src.modules.privacy.rules import ACTIONS, ALLOWED, BLOCKED, NOT_ALLOWED, Action, audience, decide
from src.modules.privacy.schemas import PermissionsView, SettingsPatch

log = structlog.get_logger("chatty.privacy")
DEFAULTS = PrivacySettingsView()
_FIELDS = PrivacySettingsView.__struct_fields__


class TargetUnknown(Exception):
    """The target of a permission question is not a user (never was, or deleted)."""


def _view(row: PrivacySettings | None) -> PrivacySettingsView:
    return DEFAULTS if row is None else PrivacySettingsView(**{f: getattr(row, f) for f in _FIELDS})


class PrivacyService:
    """Settings reads and edits, and cached permission decisions."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self.cache = PermissionCache(ctx.redis)

    # Settings

    async def settings_of(self, user_id: uuid.UUID) -> PrivacySettingsView:
        """A user's settings (the defaults when they never changed any), cached in Redis."""
        try:
            cached, version = await self.cache.lookup_settings(user_id)
        except REDIS_ERRORS:
            return await self._settings_in_db(user_id)
        if cached is not None:
            return cached
        settings = await self._settings_in_db(user_id)
        with contextlib.suppress(*REDIS_ERRORS):
            await self.cache.store_settings(user_id, version, settings)
        return settings

    async def _settings_in_db(self, user_id: uuid.UUID) -> PrivacySettingsView:
        async with self._ctx.db.session() as session:
            return _view(await session.get(PrivacySettings, user_id))

    async def hiding_last_seen(self, user_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Those of `user_ids` whose `show_last_seen` is off (one statement: a user without a row
        has the defaults, on)."""
        rows = await self._ctx.db.fetch("SELECT user_id FROM privacy.settings "
                                        "WHERE user_id = ANY($1::uuid[]) AND NOT show_last_seen", user_ids)
        return {row[0] for row in rows}

    async def update(self, principal: Principal, patch: SettingsPatch) -> PrivacySettingsView:
        """Change the caller's own settings; publishes PrivacySettingsChanged when something changed."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(principal.user_id))
        values = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        user_id = principal.user_id
        async with self._ctx.uow() as tx:
            row = await tx.session.get(PrivacySettings, user_id, with_for_update=True)
            current = _view(row)
            changed = [k for k, v in values.items() if getattr(current, k) != v]
            if not changed:
                return current
            new = msgspec.structs.replace(current, **values)
            if new == DEFAULTS:  # back on every default: nothing left worth storing
                await tx.session.execute(delete(PrivacySettings).where(PrivacySettings.user_id == user_id))
            else:  # only the patched fields on conflict, so a racing first PATCH keeps its own fields
                await tx.session.execute(
                    insert(PrivacySettings).values(user_id=user_id, **msgspec.structs.asdict(new))
                    .on_conflict_do_update(index_elements=[PrivacySettings.user_id],
                                           set_={**values, "updated_at": func.now()}))
            tx.publish(PrivacySettingsChanged(user_id=user_id, changed=changed))
        return new

    async def forget_user(self, tx: UnitOfWork, user_id: uuid.UUID) -> None:
        """Remove a deleted user's settings (a replay deletes nothing more)."""
        await tx.session.execute(delete(PrivacySettings).where(PrivacySettings.user_id == user_id))

    # Permissions

    async def decide(self, actor: uuid.UUID, target: uuid.UUID,
                     actions: Sequence[Action]) -> dict[Action, Decision]:
        """Decisions for `actions`, from the cache when valid, else computed and cached.

        Raises TargetUnknown when the target is not a user (found out on a miss only: a cached
        answer implies the target existed, and `users.user_deleted` invalidates its answers).
        """
        if actor == target:
            return dict.fromkeys(actions, ALLOWED)
        seen: Lookup | None
        try:
            seen = await self.cache.lookup(actor, target, actions)
        except REDIS_ERRORS:  # counted, not logged: an outage would flood the log
            metrics.REDIS_FALLBACKS.labels("permission").inc()
            seen = None
        hits = seen.hits if seen else {}
        missing = [a for a in actions if a not in hits]
        if not missing:
            return hits
        computed, certain = await self._compute(actor, target, missing)
        if seen is not None and certain:
            with contextlib.suppress(*REDIS_ERRORS):
                await self.cache.store(actor, target, seen, computed)
        return {**hits, **computed}

    async def _compute(self, actor: uuid.UUID, target: uuid.UUID,
                       actions: Sequence[Action]) -> tuple[dict[Action, Decision], bool]:
        """The decisions from the source of truth (users, blocks, settings, friendship), and
        whether they are certain: a friends-only answer whose friendship could not be asked is
        denied and not cached."""
        # Independent reads: run together, so a cold cache costs one round trip, not three.
        profiles, blocks, settings = await asyncio.gather(
            self._ctx.queries.ask(GetProfiles(user_ids=[target])),
            self._ctx.queries.ask(GetBlockState(user_a=actor, user_b=target)),
            self.settings_of(target))
        if target not in profiles:
            raise TargetUnknown(str(target))
        if blocks.any:
            return dict.fromkeys(actions, BLOCKED), True
        who = {action: audience(settings, action) for action in actions}
        if "friends" not in who.values():
            return {action: decide(who[action], blocked=False, friends=None) for action in actions}, True
        try:
            friends = await self._ctx.queries.ask(AreFriends(user_a=actor, user_b=target))
        except Exception as exc:
            log.warning("privacy.friendship_unknown", error=repr(exc))
            return {action: NOT_ALLOWED if who[action] == "friends" else
                    decide(who[action], blocked=False, friends=None) for action in actions}, False
        return {action: decide(who[action], blocked=False, friends=friends) for action in actions}, True

    async def can_view_profiles(self, actor: uuid.UUID, targets: list[uuid.UUID]) -> dict[uuid.UUID, Decision]:
        """"May `actor` see each profile?" for many targets in a fixed number of round trips
        (from the source of truth, uncached); an unknown target or an unresolved answer denies."""
        others = list(dict.fromkeys(t for t in targets if t != actor))
        answers: dict[uuid.UUID, Decision] = {actor: ALLOWED} if actor in targets else {}
        if not others:
            return answers
        profiles, blocks, settings = await asyncio.gather(
            self._ctx.queries.ask(GetProfiles(user_ids=others)),
            self._ctx.queries.ask(GetBlockStates(user_id=actor, other_ids=others)),
            self._settings_many(others))
        who = {t: audience(settings.get(t, DEFAULTS), "profile") for t in others}
        ask_friends = [t for t in others if t in profiles and not blocks[t].any and who[t] == "friends"]
        friends: set[uuid.UUID] | None = set()
        if ask_friends:
            try:
                friends = await self._ctx.queries.ask(FriendsAmong(user_id=actor, other_ids=ask_friends))
            except Exception as exc:
                log.warning("privacy.friendship_unknown", error=repr(exc))
                friends = None
        for t in others:
            if t not in profiles:
                answers[t] = NOT_ALLOWED
            elif who[t] == "friends" and friends is None:
                answers[t] = BLOCKED if blocks[t].any else NOT_ALLOWED
            else:
                answers[t] = decide(who[t], blocked=blocks[t].any, friends=t in (friends or set()))
        return answers

    async def _settings_many(self, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, PrivacySettingsView]:
        async with self._ctx.db.session() as session:
            rows = (await session.scalars(select(PrivacySettings)
                                          .where(PrivacySettings.user_id.in_(user_ids)))).all()
        return {row.user_id: _view(row) for row in rows}

    async def answer(self, action: Action, actor: uuid.UUID, target: uuid.UUID) -> Decision:
        """The query-bus answer: an unknown target, or any failure that leaves it unknown, denies."""
        try:
            return (await self.decide(actor, target, (action,)))[action]
        except TargetUnknown:
            return NOT_ALLOWED
        except Exception as exc:
            log.warning("privacy.decision_failed", action=action, error=repr(exc))
            return NOT_ALLOWED

    async def permissions(self, principal: Principal, target: uuid.UUID) -> PermissionsView:
        """The caller's permissions towards `target`; 404 when the target is not a user."""
        try:
            decisions = await self.decide(principal.user_id, target, ACTIONS)
        except TargetUnknown:
            raise NotFound("No such user", code="user_not_found") from None
        except Exception as exc:
            log.warning("privacy.decision_failed", action="all", error=repr(exc))
            decisions = dict.fromkeys(ACTIONS, NOT_ALLOWED)
        return PermissionsView(can_message=decisions["message"].allowed, can_call=decisions["call"].allowed,
                               can_view_profile=decisions["profile"].allowed)
