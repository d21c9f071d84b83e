"""`GET /posts/feed` straight from ASGI (src/infra/http/raw_routes.py): the common request — a bearer
token, at most `limit` and `cursor` in plain form — costs the authentication, the feed and two ASGI
messages. Anything else, and any error, goes to the Litestar handler (controller.py), which answers
it as the API always has (validation problems, 401, 404 …)."""

from __future__ import annotations

from litestar.types import Scope, Send

from src.infra.http.principal import principal_of
from src.infra.http.raw_routes import dependency_value, send_json
from src.modules.posts.feed import FeedService

MAX_LIMIT = 1000  # the route's `limit` bound (controller.Limit)
MAX_CURSOR = 512  # the route's `cursor` bound (controller.Cursor)
# Cursors are URL-safe base64 (pagination.encode_cursor): nothing to percent-decode.
_CURSOR_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")


def simple_query(query: bytes) -> tuple[int | None, str | None] | None:
    """(limit, cursor) of a query string holding at most these two, each once, in plain form
    (limit 1..MAX_LIMIT without leading zeros, a cursor of base64url characters); None otherwise."""
    limit: int | None = None
    cursor: str | None = None
    if not query:
        return limit, cursor
    for part in query.split(b"&"):
        name, eq, value = part.partition(b"=")
        if not eq or not value:
            return None
        if name == b"limit" and limit is None:
            if not value.isdigit() or value[0] == 48 or len(value) > 4 or int(value) > MAX_LIMIT:  # 48: "0"
                return None
            limit = int(value)
        elif name == b"cursor" and cursor is None:
            if len(value) > MAX_CURSOR or not _CURSOR_CHARS.issuperset(value):
                return None
            cursor = value.decode("ascii")
        else:
            return None
    return limit, cursor


async def feed_raw(scope: Scope, send: Send) -> bool:
    """Answer a plain feed request (True), or leave it to Litestar (False, nothing sent)."""
    query = simple_query(scope.get("query_string", b""))
    if query is None:
        return False
    try:
        principal = await principal_of(scope)
        feed: FeedService = dependency_value(scope, "feed_service")
        body = await feed.feed(principal.user_id, *query)
    except Exception:  # answered by Litestar's handler: the same error, as a problem
        return False
    await send_json(send, body)
    return True
