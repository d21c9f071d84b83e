"""Cursor pagination: the limit is clamped, cursors round-trip, malformed cursors are a 400."""

from __future__ import annotations

import base64

import pytest

from src.common.errors import ValidationFailed
from src.common.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    clamp_limit,
    decode_cursor,
    encode_cursor,
    page_of,
)


def test_limit_defaults_and_is_capped() -> None:
    assert clamp_limit(None) == DEFAULT_LIMIT == 20
    assert clamp_limit(1) == 1
    assert clamp_limit(100) == 100
    assert clamp_limit(101) == MAX_LIMIT == 100
    assert clamp_limit(10**9) == 100


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_below_one_is_refused_naming_the_field(limit: int) -> None:
    with pytest.raises(ValidationFailed) as caught:
        clamp_limit(limit)
    assert caught.value.field == "limit"
    assert caught.value.status == 400


def test_cursor_round_trips() -> None:
    position = {"u": "émile_ü", "id": "0190a5e4-5c4c-7cc1-9f0a-2c3b4d5e6f70", "n": 3}
    cursor = encode_cursor(position)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor  # URL-safe, unpadded
    assert decode_cursor(cursor) == position


def test_cursor_with_a_composite_key_round_trips() -> None:
    position = {"p": 2, "x": "735", "h": "740", "k": ["736", "0190a5e4-5c4c-7cc1-9f0a-2c3b4d5e6f70", 4]}
    assert decode_cursor(encode_cursor(position)) == position


def test_no_cursor_is_the_first_page() -> None:
    assert decode_cursor(None) is None
    assert decode_cursor("") is None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "!!!not-a-cursor!!!",           # not base64
    "abc",                          # base64 of bytes that are not JSON
    _b64(b"{not json"),             # truncated JSON
    _b64(b"[1, 2]"),                # JSON, but not an object
    _b64(b'"text"'),
    _b64(b"\xff\xfe\x00"),          # not UTF-8
    _b64(b'{"k": ["a\\u0000b"]}'),   # a NUL inside a composite key
])
def test_malformed_cursor_is_a_400_naming_the_field(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_cursor(cursor)
    assert caught.value.field == "cursor"
    assert caught.value.code == "invalid_cursor"


def test_page_of_uses_the_extra_row_only_to_know_there_is_more() -> None:
    rows = list(range(6))
    page = page_of(rows, 5, lambda r: {"n": r})
    assert page.items == [0, 1, 2, 3, 4]
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor) == {"n": 4}

    last = page_of(rows[:5], 5, lambda r: {"n": r})
    assert last.items == [0, 1, 2, 3, 4]
    assert last.next_cursor is None
