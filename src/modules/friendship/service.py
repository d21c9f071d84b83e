"""Friend requests and friendships: the only code that writes the friendship tables.

Concurrency rests on the unique indexes (one pending request per unordered pair, one
friendship per pair) and `INSERT … ON CONFLICT DO NOTHING` followed by a re-read: two users
asking each other at once end with one friendship, never two requests.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, tuple_, union_all
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from src.common.clock import utcnow
from src.common.errors import Conflict, NotFound, ValidationFailed
from src.common.events.friendship import (
    FriendRequestSent,
    FriendshipAccepted,
    FriendshipDeleted,
    UserFriendshipsRemoved,
)
from src.common.guards import ensure_not_blocked
from src.common.ids import new_id
from src.common.pagination import Page, clamp_limit, decode_time_cursor, page_of, time_position
from src.common.queries.graph import GetBlockStates
from src.common.queries.users import GetProfiles, PublicProfile
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.friendship.models import FriendRequest, Friendship
from src.modules.friendship.schemas import Direction, FriendAccepted, FriendRequestView, FriendView, RequestStatus

_REQUEST = (FriendRequest.id, FriendRequest.from_user_id, FriendRequest.to_user_id, FriendRequest.created_at)
# A request racing with an accept, decline or cancel of the pair's request settles in a few tries.
_TRIES = 3


def _ordered(a: uuid.UUID, b: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    # Python orders UUIDs by their 128-bit value, PostgreSQL by their bytes: the same order.
    return (a, b) if a < b else (b, a)


def _request_pair(a: uuid.UUID, b: uuid.UUID) -> Any:
    lo, hi = _ordered(a, b)
    return and_(func.least(FriendRequest.from_user_id, FriendRequest.to_user_id) == lo,
                func.greatest(FriendRequest.from_user_id, FriendRequest.to_user_id) == hi)




def _view(row: Any, status: RequestStatus, user: PublicProfile | None) -> FriendRequestView:
    return FriendRequestView(id=row.id, from_user_id=row.from_user_id, to_user_id=row.to_user_id,
                             status=status, created_at=row.created_at, user=user)


class FriendshipService:
    """Send, accept, decline and cancel requests; list and remove friends; answer AreFriends."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx

    async def _profiles(self, user_ids: list[uuid.UUID],
                        viewer: uuid.UUID | None = None) -> dict[uuid.UUID, PublicProfile]:
        return await self._ctx.queries.ask(GetProfiles(user_ids=user_ids, viewer_id=viewer))

    @staticmethod
    async def _friends(session: AsyncSession, a: uuid.UUID, b: uuid.UUID) -> bool:
        lo, hi = _ordered(a, b)
        return await session.scalar(
            select(Friendship.created_at).where(Friendship.user_a == lo, Friendship.user_b == hi)) is not None

    async def send_request(self, actor: uuid.UUID, target: uuid.UUID) -> tuple[FriendRequestView, bool]:
        """Ask `target` to be friends: (the request, whether it is new).

        Asking again returns the pending request; asking someone who already asked you accepts
        theirs (status `accepted`); 409 `already_friends` when you are friends.
        """
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(actor))
        if actor == target:
            raise ValidationFailed("You cannot befriend yourself", field="user_id", code="cannot_befriend_self")
        profile = (await self._profiles([target])).get(target)
        if profile is None:
            raise NotFound("No such user", code="user_not_found")
        await ensure_not_blocked(self._ctx.queries, actor, target)
        async with self._ctx.uow() as tx:
            row, status, created = await self._send_in(tx, actor, target)
        return _view(row, status, profile), created

    async def _send_in(self, tx: UnitOfWork, actor: uuid.UUID,
                       target: uuid.UUID) -> tuple[Any, RequestStatus, bool]:
        for _ in range(_TRIES):
            await self._refuse_if_friends(tx, actor, target)
            pending = (await tx.session.execute(
                select(*_REQUEST).where(_request_pair(actor, target)).with_for_update())).first()
            if pending is not None:
                if pending.from_user_id == actor:
                    return pending, "pending", False
                accepted = await self._accept_in(tx, pending.id, actor)
                if accepted is not None:
                    return accepted, "accepted", False
                continue  # declined or cancelled meanwhile
            now = utcnow()
            row = (await tx.session.execute(
                insert(FriendRequest).values(id=new_id(), from_user_id=actor, to_user_id=target, created_at=now)
                .on_conflict_do_nothing().returning(*_REQUEST))).first()
            if row is None:  # the pair's request committed meanwhile (maybe theirs): read it
                continue
            # An accept that committed while we waited on the pair's row made them friends.
            await self._refuse_if_friends(tx, actor, target)
            tx.publish(FriendRequestSent(request_id=row.id, from_user_id=actor, to_user_id=target,
                                         occurred_at=now))
            return row, "pending", True
        raise Conflict("The request collided with another change; try again", code="concurrent_update")

    async def _refuse_if_friends(self, tx: UnitOfWork, a: uuid.UUID, b: uuid.UUID) -> None:
        if await self._friends(tx.session, a, b):
            raise Conflict("You are already friends", code="already_friends")

    async def _accept_in(self, tx: UnitOfWork, request_id: uuid.UUID, recipient: uuid.UUID) -> Any:
        """Resolve the request if `recipient` received it: the row, or None."""
        row = (await tx.session.execute(
            delete(FriendRequest).where(FriendRequest.id == request_id, FriendRequest.to_user_id == recipient)
            .returning(*_REQUEST))).first()
        if row is None:
            return None
        lo, hi = _ordered(row.from_user_id, row.to_user_id)
        now = utcnow()
        made = (await tx.session.execute(
            insert(Friendship).values(user_a=lo, user_b=hi, requester_id=row.from_user_id, request_id=row.id,
                                      created_at=now)
            .on_conflict_do_nothing(index_elements=[Friendship.user_a, Friendship.user_b])
            .returning(Friendship.user_a))).first()
        if made is not None:
            tx.publish(FriendshipAccepted(request_id=row.id, requester_id=row.from_user_id,
                                          accepter_id=recipient, occurred_at=now))
        return row

    async def accept(self, actor: uuid.UUID, request_id: uuid.UUID) -> FriendRequestView:
        """Accept a request the actor received (404 for anyone else)."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(actor))
        async with self._ctx.uow() as tx:
            row = await self._accept_in(tx, request_id, actor)
        if row is None:
            raise NotFound("No such friend request", code="request_not_found")
        return _view(row, "accepted", (await self._profiles([row.from_user_id])).get(row.from_user_id))

    async def decline(self, actor: uuid.UUID, request_id: uuid.UUID) -> None:
        """Decline a request the actor received (404 for anyone else)."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(actor))
        await self._resolve(FriendRequest.id == request_id, FriendRequest.to_user_id == actor)

    async def cancel(self, actor: uuid.UUID, request_id: uuid.UUID) -> None:
        """Cancel a request the actor sent (404 for anyone else)."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(actor))
        await self._resolve(FriendRequest.id == request_id, FriendRequest.from_user_id == actor)

    async def _resolve(self, *where: Any) -> None:
        async with self._ctx.uow() as tx:
            removed = (await tx.session.execute(
                delete(FriendRequest).where(*where).returning(FriendRequest.id))).first()
        if removed is None:
            raise NotFound("No such friend request", code="request_not_found")

    async def requests(self, actor: uuid.UUID, direction: Direction, limit: int | None,
                       cursor: str | None) -> Page[FriendRequestView]:
        """Pending requests the actor received (`incoming`) or sent (`outgoing`), newest first."""
        size = clamp_limit(limit)
        position = decode_time_cursor(cursor)
        incoming = direction == "incoming"
        owner = FriendRequest.to_user_id if incoming else FriendRequest.from_user_id
        query = (select(*_REQUEST).where(owner == actor)
                 .order_by(FriendRequest.created_at.desc(), FriendRequest.id.desc()).limit(size + 1))
        if position:
            query = query.where(tuple_(FriendRequest.created_at, FriendRequest.id) < position)
        async with self._ctx.db.session() as session:
            rows = list((await session.execute(query)).all())
        page = page_of(rows, size, lambda r: time_position(r.created_at, r.id))
        other_of = (lambda r: r.from_user_id) if incoming else (lambda r: r.to_user_id)
        ids = [other_of(r) for r in page.items]
        profiles, blocks = await asyncio.gather(
            self._profiles(ids), self._ctx.queries.ask(GetBlockStates(user_id=actor, other_ids=ids)))
        return Page(items=[_view(r, "pending", profiles[other_of(r)]) for r in page.items
                           if other_of(r) in profiles and not blocks[other_of(r)].any],
                    next_cursor=page.next_cursor)

    async def friends(self, actor: uuid.UUID, limit: int | None, cursor: str | None) -> Page[FriendView]:
        """The actor's friends, newest friendship first."""
        size = clamp_limit(limit)
        position = decode_time_cursor(cursor)
        halves = []
        for mine, theirs in ((Friendship.user_a, Friendship.user_b), (Friendship.user_b, Friendship.user_a)):
            half = (select(theirs.label("friend_id"), Friendship.created_at).where(mine == actor)
                    .order_by(Friendship.created_at.desc(), theirs.desc()).limit(size + 1))
            if position:
                half = half.where(tuple_(Friendship.created_at, theirs) < position)
            halves.append(half.subquery())
        # Each half walks its own index in order; merging two short lists beats sorting all friends.
        both = union_all(*(select(h.c.friend_id, h.c.created_at) for h in halves)).subquery()
        query = (select(both.c.friend_id, both.c.created_at)
                 .order_by(both.c.created_at.desc(), both.c.friend_id.desc()).limit(size + 1))
        async with self._ctx.db.session() as session:
            rows = list((await session.execute(query)).all())
        page = page_of(rows, size, lambda r: time_position(r.created_at, r.friend_id))
        ids = [r.friend_id for r in page.items]
        profiles, blocks = await asyncio.gather(
            self._profiles(ids, actor), self._ctx.queries.ask(GetBlockStates(user_id=actor, other_ids=ids)))
        # A block ends the friendship after the commit (off the request's path); until then the
        # list leaves the pair out, so the blocker's next read already reflects the block.
        return Page(items=[FriendView(user=profiles[r.friend_id], since=r.created_at) for r in page.items
                           if r.friend_id in profiles and not blocks[r.friend_id].any],
                    next_cursor=page.next_cursor)

    async def unfriend(self, actor: uuid.UUID, other: uuid.UUID) -> None:
        """End the friendship with `other` (nothing happens when not friends)."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(actor))
        if actor == other:
            raise ValidationFailed("You cannot befriend yourself", field="user_id", code="cannot_befriend_self")
        async with self._ctx.uow() as tx:
            await self.remove_pair(tx, actor, other, reason="unfriend", requests=False)

    async def friends_among(self, user_id: uuid.UUID, others: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which of `others` are friends of `user_id` (one query)."""
        if not others:
            return set()
        async with self._ctx.db.session() as session:
            rows = (await session.execute(select(Friendship.user_a, Friendship.user_b).where(or_(
                and_(Friendship.user_a == user_id, Friendship.user_b.in_(others)),
                and_(Friendship.user_b == user_id, Friendship.user_a.in_(others)))))).all()
        return {r.user_b if r.user_a == user_id else r.user_a for r in rows}

    async def are_friends(self, a: uuid.UUID, b: uuid.UUID) -> bool:
        """Whether `a` and `b` are friends."""
        if a == b:
            return False
        async with self._ctx.db.session() as session:
            return await self._friends(session, a, b)

    async def friend_ids(self, user_id: uuid.UUID, among: list[uuid.UUID] | None, limit: int) -> set[uuid.UUID]:
        """The friends of `user_id` (only those in `among` when given), at most `limit`."""
        other = case((Friendship.user_a == user_id, Friendship.user_b), else_=Friendship.user_a)
        query = select(other).where(or_(Friendship.user_a == user_id, Friendship.user_b == user_id))
        if among is not None:
            query = query.where(other.in_(among))
        async with self._ctx.db.session() as session:
            return set((await session.scalars(query.limit(limit))).all())

    async def friend_ids_of_many(self, user_ids: list[uuid.UUID], limit: int) -> dict[uuid.UUID, set[uuid.UUID]]:
        """The friends of each of `user_ids`, at most `limit` each (one statement)."""
        rows = await self._ctx.db.fetch(
            "SELECT u.id, f.other FROM unnest($1::uuid[]) AS u(id) CROSS JOIN LATERAL ("
            "(SELECT user_b AS other FROM friendship.friendships WHERE user_a = u.id) UNION ALL "
            "(SELECT user_a FROM friendship.friendships WHERE user_b = u.id) LIMIT $2) AS f", user_ids, limit)
        found: dict[uuid.UUID, set[uuid.UUID]] = {u: set() for u in user_ids}
        for user_id, other in rows:
            found[user_id].add(other)
        return found

    async def remove_pair(self, tx: UnitOfWork, a: uuid.UUID, b: uuid.UUID, *, reason: str,
                          requests: bool = True) -> None:
        """Remove the friendship of `a` and `b` (FriendshipDeleted if there was one) and, with
        `requests`, their pending request."""
        lo, hi = _ordered(a, b)
        removed = (await tx.session.execute(
            delete(Friendship).where(Friendship.user_a == lo, Friendship.user_b == hi)
            .returning(Friendship.user_a))).first()
        if removed is not None:
            tx.publish(FriendshipDeleted(user_a=a, user_b=b, reason=reason))
        if requests:
            await tx.session.execute(delete(FriendRequest).where(_request_pair(a, b)))

    async def remove_user(self, tx: UnitOfWork, user_id: uuid.UUID) -> None:
        """Remove every friendship and request of `user_id` (one UserFriendshipsRemoved for them all)."""
        removed = (await tx.session.execute(
            delete(Friendship).where(or_(Friendship.user_a == user_id, Friendship.user_b == user_id))
            .returning(Friendship.user_a, Friendship.user_b))).all()
        if removed:
            tx.publish(UserFriendshipsRemoved(
                user_id=user_id, friend_ids=[r.user_b if r.user_a == user_id else r.user_a for r in removed]))
        await tx.session.execute(delete(FriendRequest).where(
            or_(FriendRequest.from_user_id == user_id, FriendRequest.to_user_id == user_id)))

    async def pending_request(self, request_id: uuid.UUID) -> FriendRequestView | None:
        """The recipient's view of a request still pending (for `friend:request`), else None."""
        async with self._ctx.db.session() as session:
            row = (await session.execute(select(*_REQUEST).where(FriendRequest.id == request_id))).first()
        if row is None:
            return None
        sender = (await self._profiles([row.from_user_id])).get(row.from_user_id)
        return _view(row, "pending", sender) if sender else None

    async def accepted_payloads(self, event: FriendshipAccepted) -> dict[uuid.UUID, FriendAccepted]:
        """`friend:accepted` for each of the two users (showing the other), while still friends."""
        lo, hi = _ordered(event.requester_id, event.accepter_id)
        async with self._ctx.db.session() as session:
            since = await session.scalar(
                select(Friendship.created_at).where(Friendship.user_a == lo, Friendship.user_b == hi))
        if since is None:
            return {}
        profiles = await self._profiles([event.requester_id, event.accepter_id])
        pairs = ((event.requester_id, event.accepter_id), (event.accepter_id, event.requester_id))
        return {me: FriendAccepted(request_id=event.request_id, requester_id=event.requester_id,
                                   accepter_id=event.accepter_id, user=profiles[other], since=since)
                for me, other in pairs if other in profiles}
