"""The query bus: each query contract has exactly one handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from src.common.queries import Query

R = TypeVar("R")


class QueryBus:
    """Register one handler per query type; `ask` calls it."""

    def __init__(self) -> None:
        self._handlers: dict[type, Callable[[Any], Awaitable[Any]]] = {}

    def register(self, query_type: type[Query[R]], handler: Callable[[Any], Awaitable[R]]) -> None:
        """Answer `query_type` with `handler`; a second handler is a wiring bug."""
        if query_type in self._handlers:
            raise ValueError(f"{query_type.__name__} already has a handler")
        self._handlers[query_type] = handler

    async def ask(self, query: Query[R]) -> R:
        """The answer to `query`."""
        try:
            handler = self._handlers[type(query)]
        except KeyError:
            raise LookupError(f"no handler answers {type(query).__name__}") from None
        result: R = await handler(query)
        return result
