"""Cursor pagination: opaque cursors, a capped limit, one page shape for every list."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar.params import Parameter

from src.common.errors import ValidationFailed

T = TypeVar("T")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
BIGINT_MAX = 2**63 - 1  # PostgreSQL's bigint: a larger number in a cursor would fail in the database

# The `limit` query parameter of every list (declared once; larger values are clamped to MAX_LIMIT).
Limit = Annotated[int | None, Parameter(ge=1, le=1000, description="page size (at most 100 are returned)")]


class Page(msgspec.Struct, Generic[T]):
    """A page of a list: the items and the cursor of the next page (null at the end)."""

    items: list[T]
    next_cursor: str | None = None


def clamp_limit(limit: int | None) -> int:
    """The page size asked for, within 1..100 (default 20)."""
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1:
        raise ValidationFailed("limit must be at least 1", field="limit")
    return min(limit, MAX_LIMIT)


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque cursor for a position in a list."""
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    """The position behind a cursor; a malformed cursor is a 400 naming the field."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = msgspec.json.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ValidationFailed("cursor is malformed", field="cursor", code="invalid_cursor") from None
    if not isinstance(position, dict) or not all(_storable(v) for v in position.values()):
        raise ValidationFailed("cursor is malformed", field="cursor", code="invalid_cursor")
    return position


def _storable(value: Any) -> bool:
    """Whether a cursor value can reach PostgreSQL: no NUL or lone surrogate, ints within bigint."""
    if isinstance(value, str):
        return _text_ok(value)
    if isinstance(value, int):
        return -BIGINT_MAX - 1 <= value <= BIGINT_MAX
    if isinstance(value, list):  # a composite key, e.g. the group stream's (xid, conversation, seq)
        return all(_storable(v) for v in value)
    return value is None or isinstance(value, float)


def _text_ok(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def cursor_time(value: Any) -> datetime:
    """A time stored in a cursor (ISO 8601 with its offset); ValueError otherwise."""
    at = datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        raise ValueError("a cursor time needs its offset")
    return at


def page_of(rows: list[T], limit: int, position_of: Any) -> Page[T]:
    """Cut `limit + 1` fetched rows into a page; the extra row only proves there is more."""
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(items=rows, next_cursor=encode_cursor(position_of(rows[-1])))
    return Page(items=rows, next_cursor=None)


def time_position(at: datetime, row_id: uuid.UUID) -> dict[str, str]:
    """The position of a row in a newest-first list ordered by (time, id)."""
    return {"t": at.isoformat(), "id": str(row_id)}


def decode_time_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The (time, id) behind a newest-first list's cursor; a malformed one is a 400."""
    position = decode_cursor(cursor)
    if position is None:
        return None
    try:
        return cursor_time(position["t"]), uuid.UUID(str(position["id"]))
    except (KeyError, ValueError):
        raise ValidationFailed("cursor is malformed", field="cursor", code="invalid_cursor") from None
