"""Profiles: the only code that writes the users tables."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
from sqlalchemy import Row, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from src.common.auth import Principal
from src.common.errors import NotFound, Unauthorized, ValidationFailed
from src.common.events.users import UserDeleted, UserRegistered
from src.common.pagination import Page, clamp_limit, decode_cursor, page_of
from src.common.queries.auth import VerifyPassword
from src.common.queries.graph import BlockedEitherWay, FollowingIds, FollowSuggestions
from src.common.queries.privacy import CanViewProfile, CanViewProfiles
from src.common.queries.users import PublicProfile
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.users.models import Profile, ProfileImage
from src.modules.users.schemas import MyProfile, ProfilePatch, ProfileView

_PUBLIC_FIELDS = [f for f in ProfileView.__struct_fields__]
# Hot reads run by asyncpg directly (Database.fetch): columns in MyProfile's field order.
_SELECT_ONE = f"SELECT {', '.join(MyProfile.__struct_fields__)} FROM users.profiles WHERE id = $1"
_SELECT_PUBLIC = "SELECT id, username, display_name, avatar_url FROM users.profiles WHERE id = ANY($1::uuid[])"


def _view(profile: Profile | Row | MyProfile) -> ProfileView:
    return ProfileView(**{f: getattr(profile, f) for f in _PUBLIC_FIELDS})


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class UsersService:
    """Profile reads, edits, search and account deletion."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx

    async def create_profile(self, tx: UnitOfWork, event: UserRegistered) -> None:
        """Create the profile of a new account (a replay changes nothing)."""
        await tx.session.execute(insert(Profile).values(
            id=event.user_id, username=event.username, email=event.email, display_name=event.display_name,
        ).on_conflict_do_nothing(index_elements=[Profile.id]))

    async def _get(self, user_id: uuid.UUID) -> MyProfile:
        row = await self._ctx.db.fetchrow(_SELECT_ONE, user_id)
        if row is None:
            raise NotFound("No such user", code="user_not_found")
        return MyProfile(*row)

    async def me(self, principal: Principal) -> MyProfile:
        """The caller's own profile."""
        return await self._get(principal.user_id)

    async def profile(self, viewer: Principal, user_id: uuid.UUID) -> ProfileView:
        """Another user's profile: 404 when it does not exist or the viewer may not see it."""
        if user_id != viewer.user_id:
            decision = await self._ctx.queries.ask(CanViewProfile(actor_id=viewer.user_id, target_id=user_id))
            if not decision.allowed:
                raise NotFound("No such user", code="user_not_found")
        return _view(await self._get(user_id))

    async def update(self, principal: Principal, patch: ProfilePatch) -> MyProfile:
        """Change the fields present in `patch`."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(principal.user_id))
        values = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        if values:
            async with self._ctx.uow() as tx:
                await tx.session.execute(update(Profile).where(Profile.id == principal.user_id)
                                         .values(**values, updated_at=func.now()))
        return await self.me(principal)

    async def visible_to(self, viewer: uuid.UUID, user_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which of `user_ids` the viewer may see (the rule of `GET /users/{id}`; answers are cached)."""
        others = [u for u in dict.fromkeys(user_ids) if u != viewer]
        decisions = await self._ctx.queries.ask(CanViewProfiles(actor_id=viewer, target_ids=others)) if others else {}
        return {u for u in others if decisions[u].allowed} | (set(user_ids) & {viewer})

    async def search(self, viewer: Principal, q: str | None, limit: int | None,
                     cursor: str | None) -> Page[ProfileView]:
        """`GET /users?q=`: counted against the search limit, then `search_visible`."""
        await self._ctx.limiter.hit(self._ctx.settings.search_limit_per_user, "search", str(viewer.user_id))
        return await self.search_visible(viewer.user_id, q, limit, cursor)

    async def search_visible(self, viewer: uuid.UUID, q: str | None, limit: int | None,
                             cursor: str | None) -> Page[ProfileView]:
        """Users whose username or display name starts with `q` (all users without it), leaving out
        profiles hidden from the viewer, blocks either way included (a page may then hold fewer than
        `limit` items). Also answers `GET /search?type=users` (SearchUsers)."""
        size = clamp_limit(limit)
        position = decode_cursor(cursor)
        query = select(Profile).order_by(func.lower(Profile.username), Profile.id).limit(size + 1)
        if q:
            prefix = _escape_like(q.strip().lower()) + "%"
            query = query.where(or_(func.lower(Profile.username).like(prefix),
                                    func.lower(Profile.display_name).like(prefix)))
        if position is not None:
            try:
                after = (str(position["u"]), uuid.UUID(str(position["id"])))
            except (KeyError, ValueError):
                raise ValidationFailed("cursor is malformed", field="cursor", code="invalid_cursor") from None
            query = query.where(tuple_(func.lower(Profile.username), Profile.id) > after)
        async with self._ctx.db.session() as session:
            rows = [_view(p) for p in (await session.scalars(query)).all()]
        page = page_of(rows, size, lambda v: {"u": v.username.lower(), "id": str(v.id)})
        visible = await self.visible_to(viewer, [v.id for v in page.items])
        return Page(items=[v for v in page.items if v.id in visible], next_cursor=page.next_cursor)

    async def suggestions(self, principal: Principal, limit: int | None) -> Page[ProfileView]:
        """People to follow: followed by those I follow first, then popular, then new users.

        Never myself, people I follow, people blocked either way, or profiles hidden from me.
        One page (no cursor): suggestions are recomputed on every call.
        """
        await self._ctx.limiter.hit(self._ctx.settings.search_limit_per_user, "search", str(principal.user_id))
        size = clamp_limit(limit)
        me = principal.user_id
        second_hop, following, blocked = await asyncio.gather(
            self._ctx.queries.ask(FollowSuggestions(user_id=me, limit=size * 2)),
            self._ctx.queries.ask(FollowingIds(user_id=me)),
            self._ctx.queries.ask(BlockedEitherWay(user_id=me)))
        excluded = following | blocked | {me}
        async with self._ctx.db.session() as session:
            fill = (await session.scalars(
                select(Profile.id).where(Profile.id.not_in(excluded))
                .order_by(Profile.followers_count.desc(), Profile.created_at.desc()).limit(size * 2))).all()
        candidates = list(dict.fromkeys([u for u in second_hop if u not in excluded] + list(fill)))
        allowed = await self.visible_to(me, candidates)
        visible = [u for u in candidates if u in allowed][:size]
        async with self._ctx.db.session() as session:
            profiles = {p.id: p for p in (await session.scalars(select(Profile).where(Profile.id.in_(visible))))}
        return Page(items=[_view(profiles[u]) for u in visible if u in profiles])

    async def delete_account(self, principal: Principal, password: str) -> None:
        """Delete the account after checking the password; every module hears `UserDeleted`."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(principal.user_id))
        if not await self._ctx.queries.ask(VerifyPassword(user_id=principal.user_id, password=password)):
            raise Unauthorized("password is wrong", code="invalid_credentials")
        async with self._ctx.uow() as tx:
            await tx.session.execute(delete(Profile).where(Profile.id == principal.user_id))
            await tx.session.execute(delete(ProfileImage).where(ProfileImage.user_id == principal.user_id))
            tx.publish(UserDeleted(user_id=principal.user_id))

    async def apply_follow_delta(self, tx: UnitOfWork, follower_id: uuid.UUID, followee_id: uuid.UUID,
                                 delta: int) -> None:
        """Move the follower's `following_count` and the followee's `followers_count` by `delta`.

        Not clamped at zero: a retried event may arrive after a later one, and plain sums
        commute, so the counts end exact whatever the order.
        """
        # Rows in id order, so two opposite follows never deadlock on the same two profiles.
        for user_id in sorted({follower_id, followee_id}):
            column = Profile.following_count if user_id == follower_id else Profile.followers_count
            await tx.session.execute(update(Profile).where(Profile.id == user_id)
                                     .values({column: column + delta}))

    async def drop_follow_counts(self, tx: UnitOfWork, follower_ids: list[uuid.UUID],
                                 followee_ids: list[uuid.UUID]) -> None:
        """One fewer followed for each of `follower_ids`, one fewer follower for each of `followee_ids`."""
        # Rows in id order (as in apply_follow_delta), so concurrent updates cannot deadlock.
        for ids, column in ((follower_ids, Profile.following_count), (followee_ids, Profile.followers_count)):
            if ids:
                locked = select(Profile.id).where(Profile.id.in_(ids)).order_by(Profile.id).with_for_update()
                await tx.session.execute(update(Profile).where(Profile.id.in_(locked)).values({column: column - 1}))

    async def public_profiles(self, user_ids: list[uuid.UUID], *,
                              viewer: uuid.UUID | None = None) -> dict[uuid.UUID, PublicProfile]:
        """Short public profiles by id (for other modules' lists); with `viewer`, only those it may see."""
        if viewer is not None:
            visible = await self.visible_to(viewer, user_ids)
            user_ids = [u for u in user_ids if u in visible]
        if not user_ids:
            return {}
        rows = await self._ctx.db.fetch(_SELECT_PUBLIC, user_ids)
        return {r[0]: PublicProfile(*r) for r in rows}

    async def email_addresses(self, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Email addresses by id (for mail other modules send)."""
        if not user_ids:
            return {}
        async with self._ctx.db.session() as session:
            rows = (await session.execute(select(Profile.id, Profile.email).where(Profile.id.in_(user_ids)))).all()
        return {r.id: r.email for r in rows}
