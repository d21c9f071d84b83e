"""The feed's raw ASGI path takes only plain query strings; everything else is Litestar's to answer."""

from __future__ import annotations

import pytest

from src.modules.posts.feed_route import simple_query


@pytest.mark.parametrize(("query", "expected"), [
    (b"", (None, None)),
    (b"limit=20", (20, None)),
    (b"limit=1000", (1000, None)),
    (b"cursor=eyJ0IjoiMjAy-_", (None, "eyJ0IjoiMjAy-_")),
    (b"limit=5&cursor=abc", (5, "abc")),
    (b"cursor=abc&limit=5", (5, "abc")),
])
def test_plain_queries_are_parsed(query: bytes, expected: tuple[int | None, str | None]) -> None:
    assert simple_query(query) == expected


@pytest.mark.parametrize("query", [
    b"limit=0", b"limit=1001", b"limit=05", b"limit=-1", b"limit=abc", b"limit=", b"limit", b"limit=1&limit=2",
    b"cursor=", b"cursor=a%3D", b"cursor=a+b", b"cursor=" + b"a" * 513, b"cursor=a&cursor=b", b"other=1",
    b"limit=1&other=1", b"&", b"limit=%31",
])
def test_anything_else_goes_to_litestar(query: bytes) -> None:
    assert simple_query(query) is None
