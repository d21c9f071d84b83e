"""Search queries behind `GET /search?type=posts|users|groups` (each answered by its module).

Each answers a page of that module's own view structs, newest or best first, with an opaque
cursor; `q` is already trimmed and non-empty, `limit` already clamped.
"""

from __future__ import annotations

import uuid
from typing import Any

from src.common.pagination import Page
from src.common.queries.base import Query


class SearchPosts(Query[Page[Any]], frozen=True):
    """Posts `viewer_id` may see whose text matches `q` (full text), newest first (answered by posts)."""

    viewer_id: uuid.UUID
    q: str
    limit: int
    cursor: str | None = None


class SearchUsers(Query[Page[Any]], frozen=True):
    """Users by username / display-name prefix, without users blocked either way or whose
    profile is hidden from `viewer_id` (answered by users)."""

    viewer_id: uuid.UUID
    q: str
    limit: int
    cursor: str | None = None


class SearchGroups(Query[Page[Any]], frozen=True):
    """Groups whose name matches `q` that `viewer_id` may find (answered by messaging)."""

    viewer_id: uuid.UUID
    q: str
    limit: int
    cursor: str | None = None
