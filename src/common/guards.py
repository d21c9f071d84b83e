"""Checks several modules make alike, built only on query contracts (no module imported)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from src.common.errors import Forbidden, NotFound
from src.common.queries.base import Query
from src.common.queries.graph import GetBlockState

R = TypeVar("R")


class Asks(Protocol):
    """Anything that answers queries (the query bus)."""

    async def ask(self, query: Query[R]) -> R: ...


async def ensure_not_blocked(queries: Asks, actor: uuid.UUID, target: uuid.UUID) -> None:
    """403 `blocked` when the actor blocked the target; 404 when the target blocked the actor
    (the target is invisible to them)."""
    state = await queries.ask(GetBlockState(user_a=actor, user_b=target))
    # The actor's own block first: answering 404 then would reveal the target's block too.
    if state.a_blocked_b:
        raise Forbidden("You blocked this user", code="blocked")
    if state.b_blocked_a:
        raise NotFound("No such user", code="user_not_found")


async def insert_or_reread(insert: Callable[[], Awaitable[Any]], reread: Callable[[], Awaitable[Any]],
                           *, tries: int = 3) -> tuple[Any, bool] | None:
    """`INSERT … ON CONFLICT DO NOTHING RETURNING` then a re-read, a few times: (row, inserted).

    A delete committing between the insert's conflict and the re-read makes the re-read miss;
    the next insert then succeeds (each statement sees what committed before it). None when
    `tries` rounds all collided (the caller answers 409).
    """
    for _ in range(tries):
        if (made := await insert()) is not None:
            return made, True
        if (found := await reread()) is not None:
            return found, False
    return None
