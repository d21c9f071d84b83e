"""The base of query contracts."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

R = TypeVar("R")


class Query(msgspec.Struct, Generic[R], frozen=True, kw_only=True):
    """A question whose answer has type `R`, answered by exactly one handler."""
